# Sourced by the device-lease scripts: installs the wheels carried in .whl/ (packages the device image lacks,
# e.g. diffusers and ftfy) and puts them and the repository on PYTHONPATH, output unbuffered.
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
