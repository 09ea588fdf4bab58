# Sourced by the GPU scripts (not run): makes a JAX GPU machine without
# TensorFlow ready for this repository. Installs the wheels that
# `benchmarks/gpu_wheels.sh` downloads (Keras, namex, optree) from .whl/ (or
# $WHEELS) into /tmp/keras-site, selects the JAX backend and prints the
# device. Run from the repository root.
python3 -m pip install --quiet --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/keras-site "${WHEELS:-.whl}"/*.whl
export PYTHONPATH="/tmp/keras-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), \
'keras', keras.__version__)"
