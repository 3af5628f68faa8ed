# Inputs of the coordinator EC2 module. Every variable is described in README.md.

variable "name" {
  description = "Name prefix for every resource (ALB, target group, ASGs, role, log group). Lower-case letters, digits and '-', at most 20 characters."
  type        = string
  default     = "coordinator"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name))
    error_message = "name must be 1-20 characters of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC that holds the ALB and the instances."
  type        = string
}

variable "alb_subnet_ids" {
  description = "Subnets of the load balancer (public subnets for an internet-facing ALB), in at least two Availability Zones."
  type        = list(string)

  validation {
    condition     = length(var.alb_subnet_ids) >= 2
    error_message = "An ALB needs subnets in at least two Availability Zones."
  }
}

variable "instance_subnet_ids" {
  description = "Subnets of the instances (private subnets with a NAT gateway or VPC endpoints: the browsers reach Google, the instances reach S3/ECR)."
  type        = list(string)

  validation {
    condition     = length(var.instance_subnet_ids) >= 1
    error_message = "Give at least one instance subnet."
  }
}

variable "alb_internal" {
  description = "true for an internal ALB (reachable only inside the VPC), false for an internet-facing one."
  type        = bool
  default     = false
}

variable "alb_ingress_cidrs" {
  description = "IPv4 CIDR blocks allowed to reach the ALB listener(s). Narrow this to your clients."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "certificate_arn" {
  description = "ACM certificate for an HTTPS listener on 443 (HTTP on 80 then redirects to it). null: plain HTTP on 80 only."
  type        = string
  default     = null
}

variable "alb_idle_timeout" {
  description = "ALB idle timeout in seconds (1-4000). A streamed answer stays alive through the coordinator's SSE heartbeat (every 15 s by default); a NON-streamed request that takes longer than this is cut by the ALB with a 504."
  type        = number
  default     = 600

  validation {
    condition     = var.alb_idle_timeout >= 60 && var.alb_idle_timeout <= 4000
    error_message = "alb_idle_timeout must be between 60 and 4000 seconds."
  }
}

variable "deregistration_delay" {
  description = "Seconds the target group keeps serving in-flight requests of a deregistering instance before the ASG terminates it (then SIGTERM gives the coordinator shutdown_grace_seconds more)."
  type        = number
  default     = 300

  validation {
    condition     = var.deregistration_delay >= 0 && var.deregistration_delay <= 3600
    error_message = "deregistration_delay must be between 0 and 3600 seconds."
  }
}

variable "shutdown_grace_seconds" {
  description = "Passed as --shutdown-grace: seconds the coordinator lets in-flight requests finish after SIGTERM before it stops the children. The container stop timeout is this + 40 s (30 s for the children to save their cookies and close their browsers, 10 s of margin), the systemd one 15 s more."
  type        = number
  default     = 10

  validation {
    condition     = var.shutdown_grace_seconds >= 0 && var.shutdown_grace_seconds <= 600
    error_message = "shutdown_grace_seconds must be between 0 and 600."
  }
}

variable "health_check_grace_period" {
  description = "Seconds after launch before the ASG acts on failing EC2 status checks. (The ALB's /ready check steers traffic only; it does not make the ASG replace instances.)"
  type        = number
  default     = 300
}

variable "install_mode" {
  description = "\"image\": Amazon Linux 2023 + Docker running var.image under a systemd unit. \"binary\": Debian 12 + the coordinator binary and deploy/systemd/coordinator.service from var.binary_bundle_s3_uri, with the child installed from var.aistudio_repo at var.aistudio_ref."
  type        = string
  default     = "image"

  validation {
    condition     = contains(["image", "binary"], var.install_mode)
    error_message = "install_mode must be \"image\" or \"binary\"."
  }
}

variable "image" {
  description = "Container image built from docker/Dockerfile (e.g. an ECR URI with a tag or digest). Required when install_mode = \"image\"; ECR images are pulled with the instance role."
  type        = string
  default     = null

  validation {
    condition     = var.image == null || can(regex("^[A-Za-z0-9][A-Za-z0-9._/:@-]*$", var.image))
    error_message = "image may contain only letters, digits and . _ / : @ -."
  }
}

variable "binary_bundle_s3_uri" {
  description = "s3:// URI of a .tar.gz holding coordinator (the binary), entrypoint.sh (docker/entrypoint.sh) and coordinator.service (deploy/systemd/coordinator.service) at its top level. Required when install_mode = \"binary\"."
  type        = string
  default     = null

  validation {
    condition     = var.binary_bundle_s3_uri == null || can(regex("^s3://[a-z0-9][a-z0-9.-]+/[A-Za-z0-9._/-]+$", var.binary_bundle_s3_uri))
    error_message = "binary_bundle_s3_uri must look like s3://bucket/path/bundle.tar.gz."
  }
}

variable "aistudio_repo" {
  description = "install_mode = \"binary\": Git repository of the AIstudioProxyAPI child."
  type        = string
  default     = "https://github.com/CJackHwang/AIstudioProxyAPI.git"

  validation {
    condition     = can(regex("^https://[A-Za-z0-9./_-]+$", var.aistudio_repo))
    error_message = "aistudio_repo must be an https:// URL without special characters."
  }
}

variable "aistudio_ref" {
  description = "install_mode = \"binary\": commit SHA (preferred), tag or branch of the child. The default is a placeholder pin; set the commit you have tested."
  type        = string
  default     = "8c366cb1af32f4df476f44dcb342d9b458699bc3"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]+$", var.aistudio_ref))
    error_message = "aistudio_ref may contain only letters, digits and . _ / -."
  }
}

variable "profiles_bucket" {
  description = "S3 bucket holding the profiles: s3://BUCKET/PREFIX/active/*.json and the optional s3://BUCKET/PREFIX/key.txt."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.profiles_bucket))
    error_message = "profiles_bucket must be a valid S3 bucket name."
  }
}

variable "profiles_prefix" {
  description = "Key prefix of the profiles inside profiles_bucket, without leading or trailing '/'. The instance role may read only below it."
  type        = string
  default     = "coordinator"

  validation {
    condition     = can(regex("^([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$", var.profiles_prefix))
    error_message = "profiles_prefix must be path segments of letters, digits and . _ - separated by '/', without leading or trailing '/'."
  }
}

variable "profiles_kms_key_arn" {
  description = "ARN of the KMS key that encrypts the profile objects (SSE-KMS). The role gets kms:Decrypt on it, through S3 only. null if the bucket uses SSE-S3."
  type        = string
  default     = null
}

variable "shard_count" {
  description = "Number of replicas. Each is its own one-instance Auto Scaling group started with --shard K/N (K = 1..N), so every Google account is served by exactly one replica. 1 passes no --shard flag."
  type        = number
  default     = 1

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 64 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be a whole number from 1 to 64."
  }
}

variable "instance_type" {
  description = "EC2 instance type. Plan about 1.5 GiB of memory per browser child (profile) on the replica plus 1-2 GiB for the system; see docs/deploy-aws.md."
  type        = string
  default     = "m6i.xlarge"
}

variable "architecture" {
  description = "CPU architecture of the instances: \"x86_64\" or \"arm64\" (the image or binary must match)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\"."
  }
}

variable "ami_id" {
  description = "AMI to use instead of the latest Amazon Linux 2023 (image mode) or Debian 12 (binary mode) AMI from the public SSM parameters."
  type        = string
  default     = null
}

variable "root_volume_size_gb" {
  description = "Size of the encrypted gp3 root volume in GiB (image, browsers, logs)."
  type        = number
  default     = 40
}

variable "extra_coordinator_args" {
  description = "Extra coordinator flags, one word per element (e.g. [\"--sse-heartbeat\", \"15\"]); appended after --shutdown-grace and --shard."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.extra_coordinator_args : can(regex("^[^\\s'\"\\\\$`]+$", a))])
    error_message = "Each element must be one word without whitespace, quotes, backslashes, '$' or backticks."
  }
}

variable "coordinator_environment" {
  description = "Extra environment variables for the coordinator and its children (e.g. COORDINATOR_* settings). Values must be single-line. BASE_API_PORT, BASE_STREAM_PORT, BASE_CAMOUFOX_PORT and PORT_STEP also set the ranges of the host firewall (binary mode)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.coordinator_environment : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k)) && !can(regex("[\\r\\n]", v))])
    error_message = "Keys must be environment variable names; values must not contain line breaks."
  }
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log group that receives the container's output (image mode)."
  type        = number
  default     = 30
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore so that operators can open a shell with Session Manager (no SSH port is opened)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}
