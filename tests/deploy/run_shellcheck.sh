#!/bin/bash
# Runs shellcheck on every tracked *.sh file of the repository, plus
# docker/entrypoint.sh (checked even before it is committed).
# Usage, from anywhere:  bash tests/deploy/run_shellcheck.sh
# Needs: shellcheck (Debian: apt-get install -y shellcheck).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

if ! command -v shellcheck >/dev/null 2>&1; then
	echo "run_shellcheck: shellcheck is not installed (apt-get install -y shellcheck)" >&2
	exit 2
fi

files=()
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	while IFS= read -r -d '' f; do
		files+=("$f")
	done < <(git ls-files -z -- '*.sh')
fi
files+=(docker/entrypoint.sh tests/deploy/run_shellcheck.sh)

# De-duplicate, keep order; every listed file must exist.
declare -A seen=()
unique=()
for f in "${files[@]}"; do
	[[ -n ${seen[$f]:-} ]] && continue
	seen[$f]=1
	if [[ ! -f $f ]]; then
		echo "run_shellcheck: $f is listed but missing" >&2
		exit 1
	fi
	unique+=("$f")
done

echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p') on ${#unique[@]} file(s)"
passed=0
failed=0
for f in "${unique[@]}"; do
	if shellcheck --external-sources "$f"; then
		echo "  ok      $f"
		passed=$((passed + 1))
	else
		echo "  FAILED  $f"
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
((failed == 0))
