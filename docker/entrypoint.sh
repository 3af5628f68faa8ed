#!/bin/bash
# Container entrypoint for the coordinator (issue 7).
#
# Optionally hydrates the Google-account profiles before handing PID 1 to the
# coordinator with `exec`, so the coordinator receives SIGTERM directly.
#
#   PROFILE_BACKEND=local (default)  use the folder mounted at /app/auth_profiles;
#                                    the arguments pass through unchanged.
#   PROFILE_BACKEND=s3               sync
#                                      s3://$AUTH_PROFILE_S3_BUCKET/$AUTH_PROFILE_S3_PREFIX/active/*.json
#                                      s3://$AUTH_PROFILE_S3_BUCKET/$AUTH_PROFILE_S3_PREFIX/key.txt (optional)
#                                    into $AUTH_PROFILE_CACHE_DIR with the AWS CLI, then run
#                                      coordinator --profiles CACHE/active [--api-keys-file CACHE/key.txt] "$@"
#                                    (any --profiles in "$@", and --api-keys-file when key.txt
#                                    was found, are dropped in favour of the synced copies).
#
# Other variables:
#   AUTH_PROFILE_CACHE_DIR        where the s3 backend writes (default /app/profile-cache)
#   AUTH_PROFILE_S3_ENDPOINT_URL  optional --endpoint-url for S3-compatible stores
#   COORDINATOR_BIN               the coordinator executable (default: `coordinator` on PATH)
#   EXTRA_COORDINATOR_ARGS        whitespace-separated flags appended after "$@"
#                                 (e.g. "--shard 2/3"); no quoting or globbing is applied
# Every other variable (COORDINATOR_*, AWS_*, ...) passes through untouched.
set -euo pipefail

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() {
	local code=$1
	shift
	printf 'entrypoint: error: %s\n' "$*" >&2
	exit "$code"
}

find_coordinator() {
	if [[ -n ${COORDINATOR_BIN:-} ]]; then
		[[ -f $COORDINATOR_BIN && -x $COORDINATOR_BIN ]] ||
			die 69 "COORDINATOR_BIN=$COORDINATOR_BIN is not an executable file"
		printf '%s\n' "$COORDINATOR_BIN"
		return
	fi
	command -v coordinator ||
		die 69 "the coordinator executable was not found on PATH ($PATH); set COORDINATOR_BIN"
}

# Final argument list, built by the backends below.
args=()

# Runs "$@" in the background and waits for it, so that SIGTERM/SIGINT sent to
# this script (PID 1 in a container, where signals without a handler are
# ignored) stop a long download at once instead of after the stop timeout.
child_pid=""
on_signal() {
	log "received $1 before the coordinator started; stopping"
	if [[ -n $child_pid ]]; then kill -TERM "$child_pid" 2>/dev/null || true; fi
	exit "$2"
}
run_interruptibly() {
	"$@" &
	child_pid=$!
	local rc=0
	wait "$child_pid" || rc=$?
	child_pid=""
	return "$rc"
}

hydrate_from_s3() {
	local bucket=${AUTH_PROFILE_S3_BUCKET:-}
	local prefix=${AUTH_PROFILE_S3_PREFIX:-}
	local cache=${AUTH_PROFILE_CACHE_DIR:-/app/profile-cache}

	[[ -n $bucket ]] ||
		die 64 "PROFILE_BACKEND=s3 but AUTH_PROFILE_S3_BUCKET is not set (the bucket name, without s3://)"
	[[ $bucket != s3://* && $bucket != */* ]] ||
		die 64 "AUTH_PROFILE_S3_BUCKET must be a bare bucket name, got '$bucket'"
	local aws
	aws=$(command -v aws) ||
		die 69 "PROFILE_BACKEND=s3 needs the AWS CLI ('aws') on PATH"

	# Trim leading and trailing slashes so "a/b/", "/a/b" and "a/b" mean the same.
	while [[ $prefix == /* ]]; do prefix=${prefix#/}; done
	while [[ $prefix == */ ]]; do prefix=${prefix%/}; done
	local source="s3://$bucket/"
	if [[ -n $prefix ]]; then source+="$prefix/"; fi

	# Profiles hold session cookies: copies readable by this user only.
	local saved_umask
	saved_umask=$(umask)
	umask 077
	mkdir -p -- "$cache/active" || die 73 "cannot create the profile cache folder $cache"
	chmod 700 -- "$cache" "$cache/active" 2>/dev/null || true

	local cmd=("$aws" s3 sync "$source" "$cache/"
		--exclude '*' --include 'active/*.json' --include 'key.txt'
		--delete --only-show-errors --no-progress)
	if [[ -n ${AUTH_PROFILE_S3_ENDPOINT_URL:-} ]]; then
		cmd+=(--endpoint-url "$AUTH_PROFILE_S3_ENDPOINT_URL")
	fi

	log "syncing ${source}active/*.json and ${source}key.txt into $cache"
	local rc=0
	run_interruptibly "${cmd[@]}" || rc=$?
	umask "$saved_umask"
	((rc == 0)) ||
		die 75 "'aws s3 sync' from $source failed with exit code $rc (see its message above; check the bucket, the region and the instance role's s3:ListBucket, s3:GetObject and kms:Decrypt permissions)"

	local profiles=()
	local f
	for f in "$cache"/active/*.json; do
		[[ -f $f ]] && profiles+=("$f")
	done
	((${#profiles[@]} > 0)) ||
		die 66 "no profiles found: ${source}active/*.json matched nothing (check AUTH_PROFILE_S3_BUCKET and AUTH_PROFILE_S3_PREFIX)"

	local keys_file=""
	if [[ -f $cache/key.txt ]]; then keys_file="$cache/key.txt"; fi
	log "synced ${#profiles[@]} profile(s); key.txt: $([[ -n $keys_file ]] && echo found || echo 'not found')"

	args=(--profiles "$cache/active")
	if [[ -n $keys_file ]]; then args+=(--api-keys-file "$keys_file"); fi

	# Drop the image's default --profiles (and --api-keys-file when ours replaces it).
	local drop_keys=0
	[[ -n $keys_file ]] && drop_keys=1
	while (($# > 0)); do
		case $1 in
		--profiles)
			shift
			if (($# > 0)); then shift; fi
			;;
		--profiles=*) shift ;;
		--api-keys-file)
			if ((drop_keys)); then
				shift
				if (($# > 0)); then shift; fi
			else
				args+=("$1")
				shift
			fi
			;;
		--api-keys-file=*)
			((drop_keys)) || args+=("$1")
			shift
			;;
		*)
			args+=("$1")
			shift
			;;
		esac
	done
}

main() {
	trap 'on_signal SIGTERM 143' TERM
	trap 'on_signal SIGINT 130' INT

	local backend=${PROFILE_BACKEND:-local}
	local bin
	bin=$(find_coordinator)

	case $backend in
	local) args=("$@") ;;
	s3) hydrate_from_s3 "$@" ;;
	*) die 64 "unknown PROFILE_BACKEND '$backend' (expected 'local' or 's3')" ;;
	esac

	if [[ -n ${EXTRA_COORDINATOR_ARGS:-} ]]; then
		local extra=()
		# `read -a` splits on whitespace and, unlike $VAR unquoted, never globs.
		read -r -a extra <<<"$EXTRA_COORDINATOR_ARGS"
		args+=("${extra[@]}")
	fi

	trap - TERM INT
	exec "$bin" "${args[@]}"
}

main "$@"
