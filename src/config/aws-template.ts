/**
 * The launch settings of a template when `provider.kind` is `aws`. Templates are free-form in the
 * config schema (each provider reads its own fields), so the config checks an aws template here,
 * at load, and a bad one is refused with the field named ("templates.web.imageId: ...") while the
 * previous config stays in force. The EC2 provider parses the same schema when it launches.
 *
 * Limits follow EC2's API reference (RunInstances, Tag): 64-character client tokens, tags of at
 * most 128/256 characters and 50 per resource, user data of at most 16 KB before base64.
 */
import { z } from 'zod';

/** EC2 accepts at most 16 KB of user data, before base64 (RunInstances, UserData). */
export const EC2_USER_DATA_MAX_BYTES = 16 * 1024;
/** EC2 tag limits (Tag data type; "Tag restrictions" in the EC2 user guide). */
export const EC2_TAG_KEY_MAX = 128;
export const EC2_TAG_VALUE_MAX = 256;
export const EC2_TAGS_PER_RESOURCE_MAX = 50;

export const AWS_CAPACITY_MODES = ['on-demand', 'spot', 'spot-then-on-demand'] as const;
export type AwsCapacityMode = (typeof AWS_CAPACITY_MODES)[number];

/** Resource ids as EC2 prints them: a prefix and lowercase hex (ami-0123456789abcdef0). */
const resourceId = (prefix: string, what: string) =>
  z.string({ error: `must be ${what} id such as "${prefix}-0123456789abcdef0"` }).regex(new RegExp(`^${prefix}-[0-9a-z]{1,32}$`), { error: `must be ${what} id such as "${prefix}-0123456789abcdef0"` });

const command = z.array(z.string().min(1).max(4096)).min(1, { error: 'must be a non-empty list of strings' }).max(256);

/**
 * The agent's fields of a cloud template (aws, hetzner): its workload, drain and health commands
 * on the instance, as for the local provider, and its first health interval.
 */
export const agentTemplateFields = {
  command: command.optional(),
  drainCommand: command.optional(),
  healthCommand: command.optional(),
  healthCheckIntervalMs: z.number().int().positive().max(86_400_000).optional(),
};

/** EC2 instance types: family and size, such as m7i.large or c7gn.16xlarge. */
const instanceType = z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/, { error: 'must be an EC2 instance type such as "m7i.large"' });

const launchTemplateSchema = z
  .strictObject({
    name: z.string().regex(/^[a-zA-Z0-9().\-/_]{3,128}$/, { error: 'must be a launch template name (3-128 of letters, digits and ().-/_)' }).optional(),
    id: resourceId('lt', 'a launch template').optional(),
    /** "$Latest", "$Default" or a version number; EC2's default is "$Default". */
    version: z.string().regex(/^(\$Latest|\$Default|[1-9][0-9]{0,17})$/, { error: 'must be "$Latest", "$Default" or a version number' }).optional(),
  })
  .superRefine((lt, ctx) => {
    if ((lt.name === undefined) === (lt.id === undefined)) ctx.addIssue({ code: 'custom', message: 'give exactly one of name and id' });
  });

/** Why a tag key cannot be used, or null. */
function tagKeyProblem(key: string): string | null {
  if (key.length === 0 || key.length > EC2_TAG_KEY_MAX) return `must be 1-${EC2_TAG_KEY_MAX} characters (EC2's limit)`;
  if (key.toLowerCase().startsWith('aws:')) return 'must not start with "aws:" (reserved by AWS)';
  if (key.startsWith('drover:')) return 'must not start with "drover:" (Drover\'s own tags)';
  return null;
}

export const awsTemplateSchema = z
  .strictObject({
    imageId: resourceId('ami', 'an AMI').optional(),
    /** Tried in order when one has no capacity. */
    instanceTypes: z.array(instanceType).min(1, { error: 'must list at least one instance type' }).max(20).optional(),
    capacity: z.enum(AWS_CAPACITY_MODES, { error: `must be one of ${AWS_CAPACITY_MODES.join(', ')}` }).default('on-demand'),
    /** Spot only: the most to pay per hour (default: the on-demand price, as EC2 does). */
    spotMaxPrice: z.string().regex(/^\d{1,6}(\.\d{1,6})?$/, { error: 'must be a price such as "0.05"' }).optional(),
    /** Instances are spread over these (one per create, chosen from the instance's id); each is tried on a capacity error. */
    subnetIds: z.array(resourceId('subnet', 'a subnet')).min(1).max(16).optional(),
    securityGroupIds: z.array(resourceId('sg', 'a security group')).min(1).max(16).optional(),
    /** An instance profile name, or its ARN. */
    iamInstanceProfile: z
      .string()
      .regex(/^([\w+=,.@-]{1,128}|arn:aws[a-z-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]{1,128})$/, { error: 'must be an instance profile name or ARN' })
      .optional(),
    keyName: z.string().min(1).max(255).optional(),
    launchTemplate: launchTemplateSchema.optional(),
    /** More tags for the instance and its volumes (Drover adds its own drover:* tags and Name). */
    tags: z
      .record(z.string(), z.string().max(EC2_TAG_VALUE_MAX, { error: `must be at most ${EC2_TAG_VALUE_MAX} characters (EC2's limit)` }))
      .superRefine((t, ctx) => {
        if (Object.keys(t).length > 20) ctx.addIssue({ code: 'custom', message: 'must hold at most 20 tags (EC2 allows 50 per instance, and Drover uses up to 13)' });
        for (const key of Object.keys(t)) {
          const problem = tagKeyProblem(key);
          if (problem) ctx.addIssue({ code: 'custom', path: [key], message: problem });
        }
      })
      .optional(),
    /** Extra cloud-init (a script or a #cloud-config), run after Drover's bootstrap. */
    userData: z.string().max(EC2_USER_DATA_MAX_BYTES).optional(),
    ...agentTemplateFields,
  })
  .superRefine((t, ctx) => {
    if (!t.launchTemplate) {
      if (!t.imageId) ctx.addIssue({ code: 'custom', path: ['imageId'], message: 'is required (or give a launchTemplate that names the AMI)' });
      if (!t.instanceTypes) ctx.addIssue({ code: 'custom', path: ['instanceTypes'], message: 'is required (or give a launchTemplate that names the instance type)' });
    }
    if (t.spotMaxPrice !== undefined && t.capacity === 'on-demand') ctx.addIssue({ code: 'custom', path: ['spotMaxPrice'], message: 'applies only when capacity is "spot" or "spot-then-on-demand"' });
  });

export type AwsTemplate = z.output<typeof awsTemplateSchema>;
