#!/bin/sh
# make demo: seed the offline cache from ../shared/data when it is there
# (otherwise lora downloads the pinned public sources), run the main recipe
# end to end, and say where the results are.
set -eu
cd "$(dirname "$0")/.."
LORA=${LORA:-bin/lora}
SHARED=${SHARED:-../shared/data}
RUNS=${RUNS:-runs}
if [ -d "$SHARED" ]; then
	echo "seeding the cache from $SHARED"
	"$LORA" cache import \
		"$SHARED/models/stories260K.gguf" \
		"$SHARED/datasets/alpaca/alpaca_5000.json" \
		"$SHARED/datasets/tinyshakespeare/input.txt"
fi
"$LORA" lint recipes/alpaca-chat.yaml
"$LORA" plan recipes/alpaca-chat.yaml
"$LORA" run recipes/alpaca-chat.yaml --runs "$RUNS"
run=$(ls -d "$RUNS"/alpaca-chat/*/ | sort | tail -n 1)
echo
echo "run directory: $run"
echo "  adapter (PEFT):   ${run}stages/train/adapter/"
echo "  adapter (GGUF):   ${run}stages/train/adapter.gguf"
echo "  loss plot:        ${run}stages/train/loss.png"
echo "  report:           ${run}stages/eval/report.md"
echo "  metrics:          ${run}metrics.jsonl"
echo "  lock file:        ${run}lora.lock   (lora rerun ${run}lora.lock)"
