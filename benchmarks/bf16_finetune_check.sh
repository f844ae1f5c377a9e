#!/usr/bin/env bash
# Does bf16 autocast (with channels-last memory) train the small preset's model as well as
# fp32? Fine-tunes small_scratch in bf16 on the small preset's rendered music, seeds 0 and 1,
# and evaluates each as `instrec reproduce` does (in-source test, threshold from the
# fine-tuning validation clips; cross-source benchmark at the model's threshold and at its
# own valid songs' threshold). The fp32 reference is the same cell of the recorded init
# grid (benchmarks/results/reproduce_small_init: random init, same config, channels-last).
#
#   bash benchmarks/bf16_finetune_check.sh runs/small-init/data/small runs/bf16-check
set -euo pipefail
data=${1:?the small preset's data folder (OUT/data/small of instrec reproduce --preset small)}
out=${2:?output folder}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
instrec=${INSTREC:-.venv/bin/instrec}
for seed in 0 1; do
  run=$out/bf16-s$seed
  "$instrec" finetune --config small_scratch --data "$data/music-train" --init scratch \
    --out "$run" --set model.name=sharesnet18 --set seed=$seed --set data.fraction=1.0 \
    --set trainer.precision=bf16-mixed --set trainer.channels_last=true
  "$instrec" evaluate "$run/model.pt" "$data/music-test" --threshold-from validation \
    --validation-data "$data/music-train" --tsne-points 0 --out "$run/eval-in"
  "$instrec" evaluate "$run/model.pt" "$data/cross-source" --split test \
    --threshold-from model --tsne-points 0 --out "$run/eval-xmodel"
  "$instrec" evaluate "$run/model.pt" "$data/cross-source" --split test \
    --threshold-from validation --tsne-points 0 --out "$run/eval-xvalid"
done
