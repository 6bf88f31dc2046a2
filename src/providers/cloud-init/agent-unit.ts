/**
 * The systemd unit of the Drover agent: the one text the cloud bootstrap (user-data.ts) writes to
 * /etc/systemd/system/drover-agent.service and the one shipped as deploy/systemd/drover-agent.service
 * (test/deploy/systemd.test.ts checks that file equals `agentUnit(AGENT_PATHS.config)`).
 *
 * Its hardening stops short of what would break the workload the agent starts, which runs in
 * this unit as the same user: no SystemCallFilter, no RestrictAddressFamilies, no
 * MemoryDenyWriteExecute (JITs), /etc and /usr read-only but /var and /opt writable.
 * The comments stay short: the unit is part of the user data (16 KiB on EC2).
 */
export function agentUnit(configPath: string): string {
  return `[Unit]
Description=Drover agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=drover
Group=drover
ExecStart=/usr/bin/env drover agent --config ${configPath}
Restart=always
RestartSec=5
# 2: credential refused, 3: instance deleted, 4: bootstrap refused: starting again changes nothing.
RestartPreventExitStatus=2 3 4
# SIGTERM to the agent alone (it stops its workload, SIGTERM then SIGKILL), SIGKILL to all left after 30 s.
KillMode=mixed
TimeoutStopSec=30
# The credential lives in /var/lib/drover-agent, the self socket in /run/drover-agent: theirs only.
StateDirectory=drover-agent
StateDirectoryMode=0700
RuntimeDirectory=drover-agent
RuntimeDirectoryMode=0700
UMask=0077
# No privilege, gained or kept, for the agent or the workload.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
# /usr, /boot, /etc read-only; homes read-only; its own /tmp; no raw devices.
ProtectSystem=full
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
# Nothing here changes the kernel, its modules, logs, cgroups or the clock.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes

[Install]
WantedBy=multi-user.target
`;
}
