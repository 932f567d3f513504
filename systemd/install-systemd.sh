#!/usr/bin/env bash
# Install SalesBoost Appliance as a systemd service. Usually run by `sudo ./install.sh --systemd`.
#
#   systemd/install-systemd.sh INSTALL_DIR
#
# INSTALL_DIR is the checkout whose .venv holds the (editable) install, e.g. /opt/salesboost.
# Steps, each safe to repeat (re-running after an upgrade re-renders the unit, migrates
# and restarts):
#   1. system user `salesboost` (sysusers.d) and /etc/salesboost/credentials 0700 (tmpfiles.d)
#   2. the unit, @INSTALL_DIR@ filled in, at /etc/systemd/system/salesboost.service
#   3. the encrypted credential session_key, only if its .cred file is missing
#   4. `salesboost migrate` and `salesboost users bootstrap-admin` as the salesboost user,
#      with the unit's environment and credentials (the first admin password is printed once)
#   5. systemctl daemon-reload, enable --now salesboost
set -euo pipefail

readonly UNIT=salesboost.service
readonly SVC_USER=salesboost
readonly UNIT_DST=/etc/systemd/system/$UNIT
readonly SYSUSERS_DST=/etc/sysusers.d/salesboost.conf
readonly TMPFILES_DST=/etc/tmpfiles.d/salesboost.conf
readonly CRED_DIR=/etc/salesboost/credentials
readonly SESSION_CRED=$CRED_DIR/session_key.cred

SRC_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly SRC_DIR

say() { printf '==> %s\n' "$*"; }
die() {
  printf 'install-systemd.sh: error: %s\n' "$*" >&2
  exit 1
}
usage() {
  printf 'usage: %s INSTALL_DIR\n' "$0" >&2
  exit 2
}

[[ $# -eq 1 ]] || usage
[[ $1 != -h && $1 != --help ]] || usage
[[ ${EUID:-$(id -u)} -eq 0 ]] ||
  die "must run as root (it creates a system user and writes to /etc): sudo $0 $1"
[[ -d /run/systemd/system ]] ||
  die "systemd is not the init system here (no /run/systemd/system); run 'salesboost serve' directly instead"
for tool in systemctl systemd-sysusers systemd-tmpfiles systemd-creds systemd-run runuser realpath; do
  command -v "$tool" >/dev/null || die "'$tool' not found; it is needed to install the service"
done

INSTALL_DIR=$(realpath -e -- "$1") || die "install dir '$1' does not exist"
readonly INSTALL_DIR
# The path goes verbatim into the unit file: no spaces (ExecStart= splits on them),
# no % (a systemd specifier), nothing sed or the shell would treat specially.
[[ $INSTALL_DIR =~ ^/[A-Za-z0-9._/+-]+$ ]] ||
  die "install dir '$INSTALL_DIR' must be a plain path (letters, digits, . _ / + -); move the checkout, e.g. to /opt/salesboost"
readonly SALESBOOST=$INSTALL_DIR/.venv/bin/salesboost
[[ -x $SALESBOOST ]] || die "$SALESBOOST not found: run ./install.sh in $INSTALL_DIR first"
for f in salesboost.service salesboost.sysusers.conf salesboost.tmpfiles.conf; do
  [[ -f $SRC_DIR/$f ]] || die "$SRC_DIR/$f is missing"
done

# --- 1. user and directories ------------------------------------------------------------
say "system user $SVC_USER and /etc/salesboost"
install -D -m 0644 "$SRC_DIR/salesboost.sysusers.conf" "$SYSUSERS_DST"
install -D -m 0644 "$SRC_DIR/salesboost.tmpfiles.conf" "$TMPFILES_DST"
systemd-sysusers "$SYSUSERS_DST"
systemd-tmpfiles --create "$TMPFILES_DST"

# The service must be able to run its own code and interpreter. This fails when the
# checkout sits in a private home directory, or when the venv was made from a Python
# under someone's home (pyenv in /root/.pyenv, ~/.local): use the system python3 then.
PYTHON=$(realpath -e -- "$INSTALL_DIR/.venv/bin/python") || die "$INSTALL_DIR/.venv/bin/python is missing"
readonly PYTHON
runuser -u "$SVC_USER" -- env -C "$INSTALL_DIR" PYTHONDONTWRITEBYTECODE=1 "$SALESBOOST" --version >/dev/null ||
  die "user $SVC_USER cannot run $SALESBOOST (interpreter $PYTHON): make $INSTALL_DIR, the interpreter and their parent directories readable (o+rx), or move the checkout to /opt/salesboost and build its venv with the system python3"
runuser -u "$SVC_USER" -- test -r "$INSTALL_DIR/models" ||
  die "user $SVC_USER cannot read $INSTALL_DIR/models"

# --- 2. the unit --------------------------------------------------------------------------
say "unit $UNIT_DST"
work=$(mktemp -d)
cleanup() { rm -rf -- "$work" "$UNIT_DST.new" "$SESSION_CRED.new"; }
trap cleanup EXIT
sed -e "s|@INSTALL_DIR@|$INSTALL_DIR|g" "$SRC_DIR/salesboost.service" >"$work/$UNIT"
for path in "$INSTALL_DIR" "$PYTHON"; do
  case $path/ in
    /home/* | /root/* | /run/user/*)
      # ProtectHome=yes would hide the code (or the interpreter) from the service;
      # read-only keeps it visible and still unwritable.
      say "$path is under a home directory: rendering ProtectHome=read-only (prefer /opt/salesboost)"
      sed -i -e 's|^ProtectHome=yes$|ProtectHome=read-only|' "$work/$UNIT"
      ;;
    *) ;;
  esac
done
! grep -q '@INSTALL_DIR@' "$work/$UNIT" || die "rendering left an @INSTALL_DIR@ placeholder in the unit"
if command -v systemd-analyze >/dev/null; then
  # Lines naming our file are typos or directives this systemd does not know (it ignores
  # them, so the service still starts, with less hardening): worth a warning, not a stop.
  verify_out=$(systemd-analyze verify --man=no "$work/$UNIT" 2>&1) || true
  if grep -F -e "$work/$UNIT:" -e "$UNIT:" <<<"$verify_out" >&2; then
    say "warning: systemd-analyze verify reported the lines above about the unit"
  fi
fi
install -m 0644 "$work/$UNIT" "$UNIT_DST.new"
mv -f -- "$UNIT_DST.new" "$UNIT_DST"
systemctl daemon-reload

# --- 3. credentials -----------------------------------------------------------------------
if [[ -s $SESSION_CRED ]]; then
  say "credential session_key: $SESSION_CRED exists, keeping it"
else
  say "credential session_key: enrolling $SESSION_CRED"
  # 48 random bytes as base64 without '=', '+', '/' and newlines (about 62 url-safe characters).
  # umask: the encrypted file is still nobody else's business.
  (
    umask 0077
    head -c 48 /dev/urandom | base64 | tr -d '\n=+/' |
      systemd-creds encrypt --name=session_key - "$SESSION_CRED.new"
  )
  mv -f -- "$SESSION_CRED.new" "$SESSION_CRED"
fi
# A .cred copied from another host (or made before a TPM reset) cannot be decrypted here;
# say so now rather than as a failed start.
systemd-creds decrypt --name=session_key "$SESSION_CRED" - >/dev/null ||
  die "$SESSION_CRED cannot be decrypted on this host; remove it and re-run to enrol a new one (this signs everyone out)"

# --- 4. migrate and first admin, as the service would run them ------------------------------
# Stop a running (older) server first, so the schema does not change under it.
if systemctl is-active --quiet "$UNIT"; then
  say "stopping the running $UNIT for the upgrade"
  systemctl stop "$UNIT"
fi
# A transient unit with the rendered unit's identity, directories, environment and
# credentials: the commands see $CREDENTIALS_DIRECTORY/session_key exactly like the
# server (a plain `runuser` would not, and would mint a stray key in the file keyring).
run_props=()
while IFS= read -r line; do
  run_props+=(--property="$line")
done < <(grep -E '^(User|Group|WorkingDirectory|UMask|StateDirectory|StateDirectoryMode|CacheDirectory|CacheDirectoryMode|Environment|EnvironmentFile|LoadCredentialEncrypted|LoadCredential)=' "$UNIT_DST")
# Never fall back to running the commands as root.
[[ " ${run_props[*]} " == *" --property=User=$SVC_USER "* ]] ||
  die "$UNIT_DST has no User=$SVC_USER line; refusing to run setup commands as root"
run_as_service() {
  # --pipe: stdin/stdout/stderr are this terminal's; --wait: exit status comes back.
  systemd-run --quiet --collect --wait --pipe --service-type=exec \
    --description="SalesBoost: salesboost $*" "${run_props[@]}" -- "$SALESBOOST" "$@"
}
say "salesboost migrate"
run_as_service migrate
say "salesboost users bootstrap-admin"
run_as_service users bootstrap-admin

# --- 5. enable and start ---------------------------------------------------------------
say "enabling and starting $UNIT"
start_failed() {
  systemctl --no-pager --full status "$UNIT" >&2 || true
  die "$UNIT did not start; see: journalctl -u salesboost -e"
}
systemctl enable --now "$UNIT" || start_failed
# `start` returns once the binary runs; a server that exits at once (bad config, missing
# model) shows up a moment later as failed or restarting ("activating").
sleep 3
[[ $(systemctl is-active "$UNIT" || true) == active ]] || start_failed
say "$UNIT is running; status: systemctl status salesboost; logs: journalctl -u salesboost -f"
