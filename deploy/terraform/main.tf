# coordinator on EC2: ALB -> one Auto Scaling group per shard -> coordinator on port 2048.
# See README.md for the variables, outputs and the two install modes.

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  # The only port of the coordinator. The real child listens on every address (API
  # 3100+i on 0.0.0.0, Camoufox debug 9222+i on all IPv4/IPv6 addresses; stream 3200+i on
  # 127.0.0.1) and serves its keys without a check (docs/real-child.md): those ports are
  # never opened in a security group, and binary mode adds a host firewall.
  coordinator_port = 2048

  # The children's layout (child i: base + i*step), as the coordinator reads it from
  # BASE_API_PORT, BASE_STREAM_PORT, BASE_CAMOUFOX_PORT and PORT_STEP in
  # coordinator_environment, with its defaults otherwise. The host firewall (binary mode)
  # drops non-loopback traffic to firewall_children children's worth of each range.
  child_port_step = tonumber(lookup(var.coordinator_environment, "PORT_STEP", "1"))
  child_port_bases = {
    api    = tonumber(lookup(var.coordinator_environment, "BASE_API_PORT", "3100"))
    stream = tonumber(lookup(var.coordinator_environment, "BASE_STREAM_PORT", "3200"))
    debug  = tonumber(lookup(var.coordinator_environment, "BASE_CAMOUFOX_PORT", "9222"))
  }
  firewall_children = 100
  child_port_ranges = { for kind, base in local.child_port_bases : kind => "${base}-${base + local.firewall_children * local.child_port_step - 1}" }

  region          = data.aws_region.current.id
  partition       = data.aws_partition.current.partition
  profiles_prefix = trim(var.profiles_prefix, "/")
  # ARN of everything below the prefix (the whole bucket when the prefix is empty).
  profiles_objects_arn = local.profiles_prefix == "" ? "arn:${local.partition}:s3:::${var.profiles_bucket}/*" : "arn:${local.partition}:s3:::${var.profiles_bucket}/${local.profiles_prefix}/*"

  # docker stop / systemd stop timeout: the coordinator's grace, 30 s for the
  # children between SIGTERM and SIGKILL (--child-stop-timeout: the real child saves
  # its cookies and closes its browser first), 10 s of margin.
  stop_timeout = var.shutdown_grace_seconds + 40

  ami_parameter = {
    image  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
    binary = "/aws/service/debian/release/bookworm/latest/${var.architecture == "x86_64" ? "amd64" : "arm64"}"
  }
  ami_id = var.ami_id != null ? var.ami_id : one(data.aws_ssm_parameter.ami[*].insecure_value)

  image_is_ecr = var.image != null && can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/", var.image))
  bundle_bucket = var.binary_bundle_s3_uri == null ? null : split("/", trimprefix(var.binary_bundle_s3_uri, "s3://"))[0]
  bundle_key    = var.binary_bundle_s3_uri == null ? null : join("/", slice(split("/", trimprefix(var.binary_bundle_s3_uri, "s3://")), 1, length(split("/", trimprefix(var.binary_bundle_s3_uri, "s3://")))))

  # Environment of the coordinator (docker --env-file / systemd EnvironmentFile),
  # read by docker/entrypoint.sh: profiles and key.txt come from S3.
  common_env = merge({
    PROFILE_BACKEND        = "s3"
    AUTH_PROFILE_S3_BUCKET = var.profiles_bucket
    AUTH_PROFILE_S3_PREFIX = local.profiles_prefix
    AWS_REGION             = local.region
    AWS_DEFAULT_REGION     = local.region
  }, var.coordinator_environment)

  shard_args = [
    for k in range(var.shard_count) : concat(
      ["--shutdown-grace", tostring(var.shutdown_grace_seconds)],
      var.shard_count > 1 ? ["--shard", "${k}/${var.shard_count}"] : [],
      var.extra_coordinator_args,
    )
  ]
  shard_env_files = [
    for k in range(var.shard_count) : join("", [
      for line in concat(
        [for key in sort(keys(local.common_env)) : "${key}=${local.common_env[key]}"],
        ["EXTRA_COORDINATOR_ARGS=${join(" ", local.shard_args[k])}"],
      ) : "${line}\n"
    ])
  ]

  # Boot script. Terraform fills the settings at the top; __ENV_B64__ is replaced
  # per shard by the base64 of that shard's environment file.
  user_data_script = <<-EOT
    #!/bin/bash
    # coordinator instance bootstrap (rendered by deploy/terraform; output in
    # /var/log/cloud-init-output.log).
    set -euo pipefail

    INSTALL_MODE='${var.install_mode}'
    IMAGE='${var.image == null ? "none" : var.image}'
    BUNDLE_URI='${var.binary_bundle_s3_uri == null ? "none" : var.binary_bundle_s3_uri}'
    AISTUDIO_REPO='${var.aistudio_repo}'
    AISTUDIO_REF='${var.aistudio_ref}'
    LOG_GROUP='${aws_cloudwatch_log_group.coordinator.name}'
    STOP_TIMEOUT='${local.stop_timeout}'
    PORT='${local.coordinator_port}'
    ENV_B64='__ENV_B64__'
    APP_UID=10001

    if ! command -v curl >/dev/null 2>&1; then
      if command -v apt-get >/dev/null 2>&1; then
        apt-get update -q && apt-get install -y -q --no-install-recommends curl ca-certificates
      else
        dnf install -y curl-minimal
      fi
    fi

    imds() {
      local token
      token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)
      curl -fsS -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
    }
    REGION=$(imds placement/region)
    INSTANCE_ID=$(imds instance-id)

    install -d -m 0755 /etc/coordinator
    printf '%s' "$ENV_B64" | base64 -d >/etc/coordinator/coordinator.env
    chmod 0600 /etc/coordinator/coordinator.env

    # Liveness: restart the service when /live fails 3 checks in a row (30 s apart),
    # once it has been up for 2 minutes. /ready is left to the ALB: a replica whose
    # children are not ready (e.g. expired cookies) stays up and out of rotation.
    install_liveness() {
      local unit=$1
      cat >/usr/local/sbin/coordinator-liveness <<'LIVE'
    #!/bin/bash
    set -uo pipefail
    unit=$1
    port=$2
    state=/run/coordinator-liveness.failures
    systemctl is-active --quiet "$unit" || exit 0
    since=$(systemctl show -p ActiveEnterTimestampMonotonic --value "$unit")
    now=$(awk '{printf "%d", $1 * 1000000}' /proc/uptime)
    ((now - since > 120000000)) || exit 0
    if curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$port/live"; then
      echo 0 >"$state"
      exit 0
    fi
    failures=$(($(cat "$state" 2>/dev/null || echo 0) + 1))
    echo "$failures" >"$state"
    if ((failures >= 3)); then
      echo "coordinator /live failed $failures times in a row; restarting $unit"
      echo 0 >"$state"
      systemctl restart "$unit"
    fi
    LIVE
      chmod 0755 /usr/local/sbin/coordinator-liveness
      cat >/etc/systemd/system/coordinator-liveness.service <<UNIT
    [Unit]
    Description=coordinator liveness probe (/live)

    [Service]
    Type=oneshot
    ExecStart=/usr/local/sbin/coordinator-liveness $unit $PORT
    UNIT
      cat >/etc/systemd/system/coordinator-liveness.timer <<'UNIT'
    [Unit]
    Description=coordinator liveness probe every 30 s

    [Timer]
    OnBootSec=3min
    OnUnitActiveSec=30s
    AccuracySec=5s

    [Install]
    WantedBy=timers.target
    UNIT
      systemctl daemon-reload
      systemctl enable --now coordinator-liveness.timer
    }

    install_image_mode() {
      dnf install -y docker
      systemctl enable --now docker
      install -d -o "$APP_UID" -g "$APP_UID" -m 0750 /var/log/coordinator

      cat >/usr/local/sbin/coordinator-pull <<'PULL'
    #!/bin/bash
    # Logs in to ECR when the image lives there (tokens last 12 h), then pulls.
    set -euo pipefail
    image=$1
    region=$2
    registry=$${image%%/*}
    if [[ $registry == *.dkr.ecr.*.amazonaws.com* ]]; then
      aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
    fi
    docker pull "$image"
    PULL
      chmod 0755 /usr/local/sbin/coordinator-pull
      /usr/local/sbin/coordinator-pull "$IMAGE" "$REGION"

      cat >/etc/systemd/system/coordinator-container.service <<UNIT
    [Unit]
    Description=coordinator (container $IMAGE)
    Requires=docker.service
    After=docker.service network-online.target
    Wants=network-online.target

    [Service]
    ExecStartPre=-/usr/bin/docker rm -f coordinator
    ExecStartPre=-/usr/local/sbin/coordinator-pull $IMAGE $REGION
    # The children listen on every address of the container: on its own network with
    # inter-container traffic off, only the published 2048 leaves the host's bridge.
    ExecStartPre=-/usr/bin/docker network create --driver bridge --opt com.docker.network.bridge.enable_icc=false coordinator
    ExecStart=/usr/bin/docker run --rm --name coordinator --network coordinator --env-file /etc/coordinator/coordinator.env -p $PORT:2048 -v /var/log/coordinator:/app/logs --tmpfs /app/profile-cache:uid=$APP_UID,gid=$APP_UID,mode=0700,size=64m --shm-size 1g --ulimit nofile=65536:65536 --stop-signal SIGTERM --stop-timeout $STOP_TIMEOUT --log-driver awslogs --log-opt awslogs-region=$REGION --log-opt awslogs-group=$LOG_GROUP --log-opt awslogs-stream=$INSTANCE_ID $IMAGE
    ExecStop=/usr/bin/docker stop --time $STOP_TIMEOUT coordinator
    TimeoutStopSec=$((STOP_TIMEOUT + 15))
    Restart=always
    RestartSec=5

    [Install]
    WantedBy=multi-user.target
    UNIT
      systemctl daemon-reload
      systemctl enable --now coordinator-container.service
      install_liveness coordinator-container.service
    }

    # Binary mode runs the children on the host, where they listen on every address: drop
    # non-loopback traffic to their ports (deploy/systemd/coordinator-children.nft and
    # coordinator-firewall.service, with this module's port ranges), IPv4 and IPv6,
    # before the coordinator starts.
    install_children_firewall() {
      cat >/etc/coordinator/children.nft <<'NFT'
    #!/usr/sbin/nft -f
    # Written by deploy/terraform: deploy/systemd/coordinator-children.nft with this
    # module's ranges. Only loopback reaches the children's ports.
    define child_api_ports = ${local.child_port_ranges.api}
    define child_stream_ports = ${local.child_port_ranges.stream}
    define child_debug_ports = ${local.child_port_ranges.debug}

    table inet coordinator_children
    delete table inet coordinator_children

    table inet coordinator_children {
        chain input {
            type filter hook input priority filter; policy accept;
            iifname "lo" accept
            tcp dport { $child_api_ports, $child_stream_ports, $child_debug_ports } counter drop
        }
    }
    NFT
      chmod 0644 /etc/coordinator/children.nft
      nft -c -f /etc/coordinator/children.nft
      cat >/etc/systemd/system/coordinator-firewall.service <<'UNIT'
    [Unit]
    Description=coordinator: children's ports reachable over loopback only (nftables)
    Documentation=man:nft(8)
    After=nftables.service
    PartOf=nftables.service
    Before=coordinator.service

    [Service]
    Type=oneshot
    RemainAfterExit=yes
    ExecStart=/usr/sbin/nft -f /etc/coordinator/children.nft
    ExecReload=/usr/sbin/nft -f /etc/coordinator/children.nft
    ExecStop=/usr/sbin/nft delete table inet coordinator_children

    [Install]
    WantedBy=multi-user.target coordinator.service
    UNIT
      systemctl daemon-reload
      systemctl enable --now coordinator-firewall.service
    }

    install_binary_mode() {
      export DEBIAN_FRONTEND=noninteractive
      apt-get update
      apt-get install -y --no-install-recommends \
        python3 python3-venv git ca-certificates curl lsof procps awscli nftables \
        libspdlog1.10 libfmt9 libboost-filesystem1.74.0 libssl3 \
        libgtk-3-0 libdbus-glib-1-2 libx11-xcb1 libxt6 libxcomposite1 libxdamage1 \
        libxrandr2 libxtst6 libxss1 libxkbcommon0 libasound2 libpci3 libnss3 libnspr4 \
        libgbm1 libdrm2 libegl1 libatk1.0-0 libatk-bridge2.0-0 libcups2 \
        libpango-1.0-0 libpangocairo-1.0-0 libcairo2 libfontconfig1 libfreetype6 \
        fonts-liberation fonts-noto-color-emoji

      if ! getent passwd coordinator >/dev/null; then
        useradd --system --uid "$APP_UID" --user-group --home-dir /var/lib/coordinator \
          --create-home --shell /usr/sbin/nologin coordinator
      fi
      install -d -o coordinator -g coordinator -m 0750 /var/log/coordinator
      install -d -o coordinator -g coordinator -m 0700 /var/lib/coordinator/profile-cache

      local work child req
      work=$(mktemp -d)
      aws s3 cp --region "$REGION" --only-show-errors "$BUNDLE_URI" "$work/bundle.tar.gz"
      tar -xzf "$work/bundle.tar.gz" -C "$work"
      install -m 0755 "$work/coordinator" /usr/local/bin/coordinator
      install -m 0755 "$work/entrypoint.sh" /usr/local/bin/coordinator-entrypoint
      install -m 0644 "$work/coordinator.service" /etc/systemd/system/coordinator.service

      # The AIstudioProxyAPI child at the pinned ref, in its own virtualenv.
      child=/opt/aistudioproxyapi
      rm -rf "$child"
      git init -q "$child"
      git -C "$child" remote add origin "$AISTUDIO_REPO"
      git -C "$child" fetch -q --depth 1 origin "$AISTUDIO_REF"
      git -C "$child" checkout -q --detach FETCH_HEAD
      python3 -m venv "$child/.venv"
      if [[ -f $child/requirements.txt ]]; then
        req=$child/requirements.txt
      else
        python3 -m venv /opt/poetry
        /opt/poetry/bin/pip install -q poetry==2.1.3 poetry-plugin-export==1.9.0
        (cd "$child" && /opt/poetry/bin/poetry export -f requirements.txt --without-hashes --only main -o "$work/requirements.txt")
        req=$work/requirements.txt
      fi
      "$child/.venv/bin/pip" install -q -r "$req"
      "$child/.venv/bin/python" -m playwright install-deps firefox
      install -d "$child/logs" "$child/auth_profiles/active" "$child/auth_profiles/saved"
      chown -R coordinator:coordinator "$child"
      runuser -u coordinator -- env HOME=/var/lib/coordinator "$child/.venv/bin/python" -m camoufox fetch

      cat >>/etc/coordinator/coordinator.env <<ENV
    COORDINATOR_BIN=/usr/local/bin/coordinator
    COORDINATOR_LAUNCHER=$child/launch_camoufox.py
    COORDINATOR_PYTHON=$child/.venv/bin/python
    COORDINATOR_HOST=0.0.0.0
    COORDINATOR_PORT=$PORT
    COORDINATOR_LOG_DIR=/var/log/coordinator
    AUTH_PROFILE_CACHE_DIR=/var/lib/coordinator/profile-cache
    HOME=/var/lib/coordinator
    AUTO_CONFIRM_LOGIN=true
    ENV

      # deploy/systemd/coordinator.service is kept as shipped; this drop-in runs it
      # through the entrypoint (S3 hydration, --shard) with the settings above.
      install -d /etc/systemd/system/coordinator.service.d
      cat >/etc/systemd/system/coordinator.service.d/10-terraform.conf <<DROPIN
    [Service]
    User=coordinator
    Group=coordinator
    EnvironmentFile=/etc/coordinator/coordinator.env
    ExecStart=
    ExecStart=/usr/local/bin/coordinator-entrypoint
    KillMode=mixed
    TimeoutStopSec=$((STOP_TIMEOUT + 15))
    DROPIN
      rm -rf "$work"
      install_children_firewall
      systemctl daemon-reload
      systemctl enable --now coordinator.service
      install_liveness coordinator.service
    }

    echo "coordinator bootstrap: mode=$INSTALL_MODE region=$REGION instance=$INSTANCE_ID"
    case $INSTALL_MODE in
    image) install_image_mode ;;
    binary) install_binary_mode ;;
    *)
      echo "unknown install mode: $INSTALL_MODE" >&2
      exit 1
      ;;
    esac
  EOT

  tags = merge({ "app" = var.name }, var.tags)
}

data "aws_ssm_parameter" "ami" {
  count = var.ami_id == null ? 1 : 0
  name  = local.ami_parameter[var.install_mode]
}

# ---------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------
resource "aws_cloudwatch_log_group" "coordinator" {
  name              = "/${var.name}/coordinator"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

# ---------------------------------------------------------------------------
# Security groups: clients -> ALB (80/443), ALB -> instances (2048 only).
# ---------------------------------------------------------------------------
resource "aws_security_group" "alb" {
  name_prefix = "${var.name}-alb-"
  description = "coordinator ALB: HTTP(S) from the allowed clients"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-alb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = var.certificate_arn == null ? "HTTP from clients" : "HTTP from clients (redirected to HTTPS)"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = var.certificate_arn == null ? toset([]) : toset(var.alb_ingress_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_instances" {
  security_group_id            = aws_security_group.alb.id
  description                  = "ALB to the coordinator port"
  ip_protocol                  = "tcp"
  from_port                    = local.coordinator_port
  to_port                      = local.coordinator_port
  referenced_security_group_id = aws_security_group.instance.id
}

resource "aws_security_group" "instance" {
  name_prefix = "${var.name}-instance-"
  description = "coordinator instances: port 2048 from the ALB only; child ports stay closed"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-instance" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "instance_from_alb" {
  security_group_id            = aws_security_group.instance.id
  description                  = "coordinator port from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = local.coordinator_port
  to_port                      = local.coordinator_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "instance_all" {
  security_group_id = aws_security_group.instance.id
  description       = "Outbound: Google AI Studio (browsers), S3, ECR, CloudWatch, package mirrors"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# ---------------------------------------------------------------------------
# Instance role: read the profile prefix (and the bundle), decrypt via S3,
# pull from ECR, write the log group, optional Session Manager.
# ---------------------------------------------------------------------------
data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name_prefix        = "${var.name}-instance-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = local.tags
}

data "aws_iam_policy_document" "instance" {
  statement {
    sid       = "ListProfilePrefix"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.profiles_bucket}"]

    dynamic "condition" {
      for_each = local.profiles_prefix == "" ? [] : [1]
      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${local.profiles_prefix}/", "${local.profiles_prefix}/*"]
      }
    }
  }

  statement {
    sid       = "ReadProfiles"
    actions   = ["s3:GetObject"]
    resources = [local.profiles_objects_arn]
  }

  dynamic "statement" {
    for_each = var.profiles_kms_key_arn == null ? [] : [var.profiles_kms_key_arn]
    content {
      sid       = "DecryptProfilesThroughS3"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.install_mode == "binary" && var.binary_bundle_s3_uri != null ? [1] : []
    content {
      sid       = "ReadBundle"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${local.bundle_bucket}/${local.bundle_key}"]
    }
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.coordinator.arn}:*"]
  }
}

resource "aws_iam_role_policy" "instance" {
  name   = "coordinator"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.instance.json
}

resource "aws_iam_role_policy_attachment" "ecr_read" {
  count      = var.install_mode == "image" && local.image_is_ecr ? 1 : 0
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
}

resource "aws_iam_role_policy_attachment" "ssm" {
  count      = var.enable_ssm ? 1 : 0
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "instance" {
  name_prefix = "${var.name}-"
  role        = aws_iam_role.instance.name
  tags        = local.tags
}

# ---------------------------------------------------------------------------
# Load balancer
# ---------------------------------------------------------------------------
resource "aws_lb" "coordinator" {
  name                       = "${var.name}-alb"
  load_balancer_type         = "application"
  internal                   = var.alb_internal
  subnets                    = var.alb_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = var.alb_idle_timeout
  drop_invalid_header_fields = true
  tags                       = local.tags
}

resource "aws_lb_target_group" "coordinator" {
  name                          = "${var.name}-tg"
  vpc_id                        = var.vpc_id
  target_type                   = "instance"
  protocol                      = "HTTP"
  port                          = local.coordinator_port
  deregistration_delay          = var.deregistration_delay
  load_balancing_algorithm_type = "least_outstanding_requests"

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = "traffic-port"
    path                = "/ready"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  # Requests are independent (OpenAI-style, the whole conversation in each request):
  # any replica can serve any request, so no stickiness.
  stickiness {
    type    = "lb_cookie"
    enabled = false
  }

  tags = local.tags
}

resource "aws_lb_listener" "https" {
  count             = var.certificate_arn == null ? 0 : 1
  load_balancer_arn = aws_lb.coordinator.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.coordinator.arn
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.coordinator.arn
  port              = 80
  protocol          = "HTTP"

  dynamic "default_action" {
    for_each = var.certificate_arn == null ? [1] : []
    content {
      type             = "forward"
      target_group_arn = aws_lb_target_group.coordinator.arn
    }
  }

  dynamic "default_action" {
    for_each = var.certificate_arn == null ? [] : [1]
    content {
      type = "redirect"
      redirect {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }
}

# ---------------------------------------------------------------------------
# One launch template + one single-instance Auto Scaling group per shard.
# ---------------------------------------------------------------------------
resource "aws_launch_template" "coordinator" {
  count                  = var.shard_count
  name_prefix            = "${var.name}-${count.index + 1}-of-${var.shard_count}-"
  image_id               = local.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.instance.id]
  update_default_version = true
  user_data              = base64encode(replace(local.user_data_script, "__ENV_B64__", base64encode(local.shard_env_files[count.index])))

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance.arn
  }

  # IMDSv2 only; hop limit 2 so that the container (bridge network) reaches it.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }

  # Root volume of Amazon Linux 2023 and Debian 12 AMIs (check yours with ami_id).
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-${count.index + 1}-of-${var.shard_count}", shard = "${count.index + 1}/${var.shard_count}" })
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = var.install_mode != "image" || var.image != null
      error_message = "install_mode = \"image\" needs var.image."
    }
    precondition {
      condition     = var.install_mode != "binary" || var.binary_bundle_s3_uri != null
      error_message = "install_mode = \"binary\" needs var.binary_bundle_s3_uri."
    }
    precondition {
      condition     = alltrue([for base in values(local.child_port_bases) : local.coordinator_port < base || local.coordinator_port > base + local.firewall_children * local.child_port_step - 1])
      error_message = "The children's port ranges (BASE_*_PORT, PORT_STEP in coordinator_environment) must not cover the coordinator's port 2048."
    }
  }
}

resource "aws_autoscaling_group" "coordinator" {
  count                     = var.shard_count
  name_prefix               = "${var.name}-${count.index + 1}-of-${var.shard_count}-"
  min_size                  = 1
  max_size                  = 1
  desired_capacity          = 1
  vpc_zone_identifier       = var.instance_subnet_ids
  target_group_arns         = [aws_lb_target_group.coordinator.arn]
  # EC2 status checks replace a broken instance; the ALB's /ready only steers
  # traffic (an instance whose children are not ready would not be fixed by a
  # replacement), and the liveness timer in the user data restarts a hung
  # coordinator on /live.
  health_check_type         = "EC2"
  health_check_grace_period = var.health_check_grace_period

  launch_template {
    id      = aws_launch_template.coordinator[count.index].id
    version = aws_launch_template.coordinator[count.index].latest_version
  }

  # A new launch template version replaces the instance (a one-instance group
  # has no capacity to spare: that shard is briefly unavailable, the others serve).
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 0
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { shard = "${count.index + 1}/${var.shard_count}" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}
