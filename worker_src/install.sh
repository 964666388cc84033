#!/bin/bash
# Installs the worker. On an instance (Amazon Linux 2023, run as root by user data, first boot):
#   install.sh --env-file /etc/wqw/worker.env --log-group LOG_GROUP --region REGION \
#              --cfn-stack STACK --cfn-resource ASG_LOGICAL_ID --group ASG_NAME \
#              --launch-hook HOOK --memory-max-mb MB [--pool-ready-url WAIT_HANDLE_URL]
# installs Python 3.11, aws-cfn-bootstrap, the CloudWatch agent and a swap file, creates the
# venv and the unprivileged user, and enables the worker's service (memory ceiling MB) and the
# wqw-launch unit. Then, by the instance's target state in its Auto Scaling group:
#   going into the warm pool: signals WAIT_HANDLE_URL and completes the launch hook, so the
#     group stops the instance installed (the worker starts at its next boot, not now);
#   going into service: starts the worker, waits until it has reached its queue (it writes
#     $WQW_READY_FILE), completes the launch hook and sends the CloudFormation signal.
# A failed step completes the hook with ABANDON and signals failure at once.
# At every later boot (an instance started from the warm pool), the wqw-launch unit runs
#   install.sh --finish-launch --region REGION --group ASG_NAME --launch-hook HOOK ...
# which waits for the worker systemd started and completes the launch hook; an instance whose
# launch template is older than its group's (code changed while it slept) abandons it instead.
#
# On any machine, without root:
#   install.sh --local --prefix DIR [--python python3.11]
# only copies the worker to DIR/app/worker_src and creates DIR/venv with its requirements;
# run it with: (cd DIR/app && DIR/venv/bin/python -m worker_src), or DIR/bin/wqw-worker.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOCAL=0
PREFIX=/opt/wqw
PYTHON=""
ENV_FILE=""
LOG_GROUP=""
CFN_STACK=""
CFN_RESOURCE=""
REGION=""
GROUP=""
LAUNCH_HOOK=""
MEMORY_MAX_MB=""
POOL_READY_URL=""
FINISH_LAUNCH=0
READY_TIMEOUT=300
SERVICE=wqw-worker
SERVICE_USER=wqw
READY_FILE=/run/wqw-worker/ready
LOG_FILE=/var/log/wqw/worker.log

usage() {
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --local) LOCAL=1 ;;
        --prefix) PREFIX="$2"; shift ;;
        --python) PYTHON="$2"; shift ;;
        --env-file) ENV_FILE="$2"; shift ;;
        --log-group) LOG_GROUP="$2"; shift ;;
        --cfn-stack) CFN_STACK="$2"; shift ;;
        --cfn-resource) CFN_RESOURCE="$2"; shift ;;
        --region) REGION="$2"; shift ;;
        --ready-timeout) READY_TIMEOUT="$2"; shift ;;
        --ready-file) READY_FILE="$2"; shift ;;
        --group) GROUP="$2"; shift ;;
        --launch-hook) LAUNCH_HOOK="$2"; shift ;;
        --memory-max-mb) MEMORY_MAX_MB="$2"; shift ;;
        --pool-ready-url) POOL_READY_URL="$2"; shift ;;
        --finish-launch) FINISH_LAUNCH=1 ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown argument $1" >&2; usage ;;
    esac
    shift
done

log() { echo "install.sh: $*" >&2; }

if [ "$LOCAL" -eq 1 ]; then
    mkdir -p "$PREFIX"
    PREFIX="$(cd "$PREFIX" && pwd)"
fi

# --- CloudFormation signal (instance only) -------------------------------------------------
signal() {
    local code="$1" reason="$2"
    if [ -n "$CFN_STACK" ] && [ -n "$CFN_RESOURCE" ] && [ -x /opt/aws/bin/cfn-signal ]; then
        /opt/aws/bin/cfn-signal --exit-code "$code" --reason "$reason" \
            --stack "$CFN_STACK" --resource "$CFN_RESOURCE" --region "$REGION" \
            || log "cfn-signal failed"
    fi
}

# --- the Auto Scaling launch hook (instance only) -------------------------------------------
imds() {
    local token
    token="$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
        http://169.254.169.254/latest/api/token)" || return 1
    curl -sf -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

# InService, or Warmed:Stopped while the group launches this instance into its warm pool.
target_state() {
    imds autoscaling/target-lifecycle-state || echo InService
}

complete_launch() {
    local result="$1" instance
    [ -n "$GROUP" ] && [ -n "$LAUNCH_HOOK" ] || return 0
    instance="$(imds instance-id)" || { log "no instance id: launch hook left to time out"; return 0; }
    # Fails harmlessly when no action is pending (e.g. the hook's heartbeat already ran out).
    aws autoscaling complete-lifecycle-action --region "$REGION" \
        --auto-scaling-group-name "$GROUP" --lifecycle-hook-name "$LAUNCH_HOOK" \
        --instance-id "$instance" --lifecycle-action-result "$result" \
        || log "complete-lifecycle-action $result failed"
}

signal_pool_ready() {
    local instance
    [ -n "$POOL_READY_URL" ] && [ -x /opt/aws/bin/cfn-signal ] || return 0
    instance="$(imds instance-id || echo unknown)"
    # Only the pool's first fill is awaited by the stack; later signals are ignored.
    /opt/aws/bin/cfn-signal --exit-code 0 --id "$instance" \
        --reason "worker installed into the warm pool" "$POOL_READY_URL" \
        || log "warm pool signal not taken (the stack is not waiting for it)"
}

# The group's launch template version differs from this instance's: it slept in the warm
# pool through a deploy that changed the worker, so it must not go into service.
stale_instance() {
    local instance versions
    instance="$(imds instance-id)" || return 1
    versions="$(aws autoscaling describe-auto-scaling-groups --region "$REGION" \
        --auto-scaling-group-names "$GROUP" --output text --query \
        "AutoScalingGroups[0].[LaunchTemplate.Version, Instances[?InstanceId=='$instance'] | [0].LaunchTemplate.Version]")" \
        || return 1
    set -- $versions
    [ "$#" -eq 2 ] && [ "$2" != None ] && [ "$1" != "$2" ]
}

on_exit() {
    local code=$?
    if [ "$code" -ne 0 ] && [ "$LOCAL" -eq 0 ]; then
        log "failed with exit code $code"
        complete_launch ABANDON
        signal 1 "install.sh failed with exit code $code (see the install log stream)"
    fi
}
trap on_exit EXIT

retry() {
    local attempt
    for attempt in 1 2 3 4 5; do
        "$@" && return 0
        log "attempt $attempt of '$*' failed"
        sleep $((attempt * 5))
    done
    return 1
}

# --- OS steps (instance only) --------------------------------------------------------------
install_packages() {
    retry dnf install -y python3.11 python3.11-pip aws-cfn-bootstrap \
        amazon-cloudwatch-agent logrotate
}

add_swap() {
    if [ -n "$(swapon --show=NAME --noheadings)" ]; then
        return
    fi
    if [ ! -f /swapfile ]; then
        dd if=/dev/zero of=/swapfile bs=1M count=1024 status=none
        chmod 0600 /swapfile
        mkswap /swapfile >/dev/null
    fi
    swapon /swapfile
    grep -q '^/swapfile ' /etc/fstab || echo '/swapfile none swap defaults 0 0' >> /etc/fstab
}

add_user() {
    id -u "$SERVICE_USER" >/dev/null 2>&1 \
        || useradd --system --home-dir "$PREFIX" --no-create-home \
            --shell /sbin/nologin "$SERVICE_USER"
    install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$(dirname "$LOG_FILE")"
}

ship_logs() {
    local config=/opt/aws/amazon-cloudwatch-agent/etc/wqw-logs.json
    cat > "$config" <<EOF
{
  "agent": {"run_as_user": "root"},
  "logs": {
    "logs_collected": {
      "files": {
        "collect_list": [
          {"file_path": "$LOG_FILE", "log_group_name": "$LOG_GROUP",
           "log_stream_name": "{instance_id}/worker"},
          {"file_path": "/var/log/cloud-init-output.log", "log_group_name": "$LOG_GROUP",
           "log_stream_name": "{instance_id}/install"}
        ]
      }
    }
  }
}
EOF
    /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl \
        -a fetch-config -m ec2 -s -c "file:$config"
    cat > /etc/logrotate.d/wqw-worker <<EOF
$LOG_FILE {
    daily
    maxsize 50M
    rotate 3
    compress
    missingok
    notifempty
    copytruncate
}
EOF
    systemctl enable --now logrotate.timer
}

install_service() {
    local visibility stop_timeout units=/etc/systemd/system
    visibility="$(sed -n 's/^WQW_VISIBILITY_TIMEOUT=//p' "$ENV_FILE")"
    stop_timeout=$(( ${visibility:-120} + 30 ))
    sed -e "s|@USER@|$SERVICE_USER|g" -e "s|@PREFIX@|$PREFIX|g" \
        -e "s|@ENV_FILE@|$ENV_FILE|g" -e "s|@STOP_TIMEOUT@|$stop_timeout|g" \
        -e "s|@MEMORY_MAX_MB@|$MEMORY_MAX_MB|g" \
        "$SRC/systemd/$SERVICE.service" > "$units/$SERVICE.service"
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@REGION@|$REGION|g" -e "s|@GROUP@|$GROUP|g" \
        -e "s|@LAUNCH_HOOK@|$LAUNCH_HOOK|g" -e "s|@CFN_STACK@|$CFN_STACK|g" \
        -e "s|@CFN_RESOURCE@|$CFN_RESOURCE|g" \
        "$SRC/systemd/wqw-launch.service" > "$units/wqw-launch.service"
    systemctl daemon-reload
    # Both start at every later boot; this boot's launch is finished by main below.
    systemctl enable "$SERVICE" wqw-launch.service
}

wait_until_ready() {
    local waited=0
    while [ "$waited" -lt "$READY_TIMEOUT" ]; do
        if systemctl is-active --quiet "$SERVICE" && [ -f "$READY_FILE" ]; then
            log "worker is running and has reached its queue after ${waited}s"
            return 0
        fi
        sleep 2
        waited=$((waited + 2))
    done
    log "worker not ready after ${READY_TIMEOUT}s; last lines of $LOG_FILE:"
    tail -n 30 "$LOG_FILE" >&2 || true
    return 1
}

# --- Steps that run everywhere -------------------------------------------------------------
pick_python() {
    local candidate
    for candidate in "$PYTHON" python3.11 python3.12 python3.13 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"
            return 0
        fi
    done
    log "no Python 3.11 or newer found (give one with --python)"
    return 1
}

copy_worker() {
    local staging="$PREFIX/app.new"
    rm -rf "$staging"
    install -d -m 0755 "$staging/worker_src"
    tar -C "$SRC" --exclude=__pycache__ --exclude='*.pyc' -cf - . | tar -C "$staging/worker_src" -xf -
    rm -rf "$PREFIX/app"
    mv "$staging" "$PREFIX/app"
}

make_venv() {
    local python="$1"
    rm -rf "$PREFIX/venv"
    "$python" -m venv "$PREFIX/venv"
    if [ "$LOCAL" -eq 1 ]; then
        # A try-out: Python compiles what it imports (an instance compiles all up front, so
        # that its first job does not).
        "$PREFIX/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            --no-compile -r "$PREFIX/app/worker_src/requirements.txt"
    else
        # /tmp is a small RAM disk on Amazon Linux 2023; the pip cache would only cost disk.
        TMPDIR=/var/tmp retry "$PREFIX/venv/bin/python" -m pip install --quiet \
            --disable-pip-version-check --no-cache-dir \
            -r "$PREFIX/app/worker_src/requirements.txt"
    fi
    (cd "$PREFIX/app" && "$PREFIX/venv/bin/python" -c 'import worker_src')
    install -d -m 0755 "$PREFIX/bin"
    cat > "$PREFIX/bin/wqw-worker" <<EOF
#!/bin/sh
cd "$PREFIX/app" && exec "$PREFIX/venv/bin/python" -m worker_src "\$@"
EOF
    chmod 0755 "$PREFIX/bin/wqw-worker"
}

# A later boot: systemd started the installed worker; let the instance into service.
finish_launch() {
    if [ -n "$GROUP" ] && stale_instance; then
        log "this instance's launch template is older than its group's: abandoning it"
        complete_launch ABANDON
        return 0
    fi
    wait_until_ready
    complete_launch CONTINUE
    # Expected only while a rolling update waits for new instances; harmless otherwise.
    signal 0 "worker started from the warm pool and has reached its queue"
}

main() {
    if [ "$FINISH_LAUNCH" -eq 1 ]; then
        finish_launch
        return 0
    fi
    if [ "$LOCAL" -eq 0 ]; then
        if [ -z "$ENV_FILE" ] || [ -z "$LOG_GROUP" ] || [ -z "$REGION" ] \
            || [ -z "$MEMORY_MAX_MB" ]; then
            log "--env-file, --log-group, --region and --memory-max-mb are required (or --local)"
            exit 2
        fi
        [ "$(id -u)" -eq 0 ] || { log "run as root (or use --local)"; exit 2; }
        add_swap
        install_packages
        ship_logs
        add_user
    fi
    install -d -m 0755 "$PREFIX"
    local python
    python="$(pick_python)"
    copy_worker
    make_venv "$python"
    if [ "$LOCAL" -eq 1 ]; then
        log "installed into $PREFIX; run: $PREFIX/bin/wqw-worker"
        return 0
    fi
    install_service
    case "$(target_state)" in
        Warmed:*)
            log "installed for the warm pool; the worker starts when the instance does"
            signal_pool_ready
            complete_launch CONTINUE
            ;;
        *)
            systemctl restart "$SERVICE"
            wait_until_ready
            complete_launch CONTINUE
            signal 0 "worker is running and has reached its queue"
            ;;
    esac
}

main
