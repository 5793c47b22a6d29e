# Sourced at the start of every device-machine call: the wheels the GPU image lacks (carried in
# .whl/), then Tenon itself and the example plugin packages, without touching the image's torch.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || return 1
for package in tests/thirdparty/*/; do
    python3 -m pip install -q --no-deps --no-build-isolation "$package" >/dev/null 2>&1 || return 1
done
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
