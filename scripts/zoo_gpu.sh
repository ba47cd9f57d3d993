#!/usr/bin/env bash
# Train the whole zoo on one lent GPU (the device tool), within one 10-minute call.
# Carries: .whl (diffusers + importlib_metadata wheels), .zoodata (photos, Fashion-MNIST, text cache),
# both made by scripts/prepare_gpu_carry.sh. The weights folder must not travel (64 MiB limit): move it aside.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
export LATENTGUARD_NATURE_DIR=$PWD/.zoodata/nature LATENTGUARD_FASHION_DIR=$PWD/.zoodata/fashion
Z=/tmp/zoo; L=/tmp/logs; mkdir -p $Z $L; TC=$PWD/.zoodata/text_cache.pt
nvidia-smi --query-gpu=name,memory.total --format=csv | tee $L/gpu.txt
R="python3 -m latentguard.zoo.train.recipes --device cuda --text-cache $TC --zoo-dir $Z"
( $R vae-a --out $Z/vae-a --max-minutes ${VAE_MIN:-3} > $L/vae-a.log 2>&1
  $R t2i --out $Z/t2i --max-minutes ${T2I_MIN:-4.3} > $L/t2i.log 2>&1 &
  $R t2i-members --out $Z/t2i-members --max-minutes ${T2I_MIN:-4.3} > $L/t2i-members.log 2>&1 &
  wait ) &
if [ -z "${ONLY_CHAIN:-}" ]; then  # ONLY_CHAIN=1: rebuild vae-a and the two t2i models only
  $R vae-b --out $Z/vae-b --max-minutes ${VAE_MIN:-3} > $L/vae-b.log 2>&1 &
  $R embed --out $Z/embed --max-minutes ${VAE_MIN:-3} > $L/embed.log 2>&1 &
fi
wait
for m in vae-a vae-b t2i t2i-members embed; do [ -d $Z/$m ] && tar -C $Z -cf $OUT/$m.tar $m; done
for f in $L/*; do echo "== $f"; cat $f; done > $OUT/logs.txt
ls -la $OUT; du -sh $Z/*
for f in $L/*.log; do echo "== $f"; tail -2 $f; done
