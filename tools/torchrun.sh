#!/usr/bin/env bash
# Multi-node training without SLURM: run this on every node with the same MASTER_ADDR/MASTER_PORT.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 NPROC=4 bash tools/torchrun.sh configs/obb/dota_v1.yaml
# Lightning detects torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and does not spawn processes itself.
set -euo pipefail
CONFIG=${1:?usage: tools/torchrun.sh CONFIG [extra CLI args]}
shift
NNODES=${NNODES:-1}; NODE_RANK=${NODE_RANK:-0}; NPROC=${NPROC:-1}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}; MASTER_PORT=${MASTER_PORT:-29500}
ACCEL=${ACCEL:-auto}
torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  -m visionkit fit --config "$CONFIG" --trainer.strategy ddp --trainer.accelerator "$ACCEL" \
  --trainer.devices "$NPROC" --trainer.num_nodes "$NNODES" "$@"
