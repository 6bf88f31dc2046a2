/**
 * Keeps the Node process alive while the agent runs. The clock's timers do not hold the process
 * open (SystemClock unrefs them), so an agent waiting to reconnect, with no workload, would let
 * its process exit. A MessagePort that listens is a ref'd handle that times nothing: it holds
 * the process open until `release()` closes it, and keeps timers out of the agent.
 */
import { MessageChannel } from 'node:worker_threads';

export interface ProcessHold {
  /** Lets the process exit once nothing else holds it. Idempotent. */
  release(): void;
}

export function holdProcessOpen(): ProcessHold {
  const { port1, port2 } = new MessageChannel();
  port1.on('message', () => undefined);
  return {
    release: () => {
      port1.close();
      port2.close();
    },
  };
}
