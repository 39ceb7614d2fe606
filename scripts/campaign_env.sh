# Sourced by campaign.sh and make_campaign_data.sh: strict mode, the repository root as working directory, and the
# paths of system $SYSTEM (default ura): its work folder, the Python of .venv, its committed campaign data.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
s=${SYSTEM:-ura}
root=outputs/campaign/$s
py=.venv/bin/python
packed=deepeut/data/campaign/$s
