#!/usr/bin/env bash
# Makes this machine a JupyterHub server for a class: every student logs in with a browser, gets
# the notebooks in a folder of their own, and runs them on the mnist-gan kernel, compiled once for
# everyone. Run as root (sudo), from a checkout, once before class and again after updating it.
#
# Everything goes into one folder, SERVER (MNIST_GAN_SERVER, /opt/mnist-gan by default), readable
# by every user and writable by root only:
#   project/         the checkout's gan_lib (with its configs), data and notebooks, which every student's kernel uses
#   rust/            the Rust toolchain (this one's, as hard links) and evcxr_jupyter: the
#                    installing user's ~/.rustup and ~/.cargo are usually closed to other users
#   vendor/          the sources of gan_lib's dependencies (cargo vendor): students build offline,
#                    with nothing to download and no shared cargo folder to write into
#   venv/            JupyterHub, JupyterLab, and the mnist-gan kernel for every user
#   proxy/           JupyterHub's proxy, configurable-http-proxy (npm)
#   build/evcxr-template/  gan_lib and its dependencies compiled once; each student's kernel links
#                    to it; build/.cargo/config.toml, a copy of cargo-config.toml, points cargo at
#                    vendor/ (the toolchain must not lie below it: its own sources have other crates)
#   jupyterhub_config.py, state/   the hub's configuration and its database
# Then: SERVER/venv/bin/jupyterhub -f SERVER/jupyterhub_config.py  (docs/notebooks.md, "A class on
# one server": users, the port, HTTPS).
set -euo pipefail
cd "$(dirname "$0")/../.."
SERVER="${MNIST_GAN_SERVER:-/opt/mnist-gan}"

if [ "$(id -u)" != 0 ]; then
    echo "setup-server: run as root (sudo bash $0): it installs into $SERVER for every user," \
         "and the hub it prepares starts each student's server as that student" >&2
    exit 1
fi
if ! command -v npm >/dev/null; then
    echo "setup-server: missing prerequisite: Node.js and npm, for JupyterHub's proxy:" \
         "apt install nodejs npm" >&2
    exit 1
fi
# The prerequisites of one machine (Rust, cc, python3 with venv, disk), and evcxr_jupyter.
bash scripts/setup.sh --evcxr-only
mkdir -p "$SERVER"
chmod 755 "$SERVER"
started=$(date +%s)

# -- The project, where every student's kernel finds gan_lib and the shipped data. Each student
# gets a folder whose gan_lib and data are links to these, so every kernel compiles the same
# gan_lib (evcxr resolves the links) and finds its compiled copy in the template.
echo "copying gan_lib, configs, data and notebooks to $SERVER/project"
rm -rf "$SERVER/project.new"
mkdir -p "$SERVER/project.new"
git ls-files -z Cargo.toml Cargo.lock gan_lib configs data notebooks \
    | tar --null -T - -cf - | tar -xpf - -C "$SERVER/project.new"
if [ -d "$SERVER/project" ] && diff -rq "$SERVER/project" "$SERVER/project.new" >/dev/null; then
    rm -rf "$SERVER/project.new"   # unchanged: keeps its files' times, so the template stays fresh
else
    rm -rf "$SERVER/project"
    mv "$SERVER/project.new" "$SERVER/project"
fi

# -- The toolchain, for every user.
sysroot=$(rustc --print sysroot)
rust_version=$(rustc --version)
if [ "$(cat "$SERVER/rust/.rustc-version" 2>/dev/null)" != "$rust_version" ]; then
    echo "linking the Rust toolchain ($rust_version) into $SERVER/rust"
    rm -rf "$SERVER/rust.new"
    cp -al "$sysroot" "$SERVER/rust.new" 2>/dev/null || { rm -rf "$SERVER/rust.new"; cp -a "$sysroot" "$SERVER/rust.new"; }
    echo "$rust_version" > "$SERVER/rust.new/.rustc-version"
    rm -rf "$SERVER/rust"
    mv "$SERVER/rust.new" "$SERVER/rust"
fi
evcxr=$(command -v evcxr_jupyter || echo "${CARGO_HOME:-$HOME/.cargo}/bin/evcxr_jupyter")
install -m 755 "$evcxr" "$SERVER/rust/bin/evcxr_jupyter"

# -- The dependencies' sources (about 600 MB), read by every student's cargo.
if ! cmp -s Cargo.lock "$SERVER/vendor/.mnist-gan-Cargo.lock"; then
    echo "vendoring gan_lib's dependencies into $SERVER/vendor"
    rm -rf "$SERVER/vendor"
    cargo vendor --locked --quiet "$SERVER/vendor" >/dev/null
    cp Cargo.lock "$SERVER/vendor/.mnist-gan-Cargo.lock"
fi

# -- JupyterHub, JupyterLab and the proxy, from a Python every user can run: students' servers
# run from this environment, and a Python under the installing user's home (pyenv's, say) is closed
# to them.
as_anyone() { runuser -u nobody -- "$@" >/dev/null 2>&1; }
if ! as_anyone "$SERVER/venv/bin/python" -c 'import sys'; then
    server_python=""
    for candidate in /usr/bin/python3 "$(command -v python3)"; do
        if as_anyone "$candidate" -c 'import venv, ensurepip'; then server_python=$candidate; break; fi
    done
    if [ -z "$server_python" ]; then
        echo "setup-server: missing prerequisite: a Python 3.9+ with venv that every user can run:" \
             "apt install python3 python3-venv" >&2
        exit 1
    fi
    rm -rf "$SERVER/venv"
    "$server_python" -m venv "$SERVER/venv"
fi
if ! "$SERVER/venv/bin/python" -c 'import jupyterhub, jupyterlab, nbclient, nbformat, jupyter_client' 2>/dev/null; then
    echo "installing JupyterHub and JupyterLab into $SERVER/venv"
    "$SERVER/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/hub/requirements.txt
fi
mkdir -p "$SERVER/proxy"
cp scripts/hub/package.json scripts/hub/package-lock.json "$SERVER/proxy/"
if [ ! -x "$SERVER/proxy/node_modules/.bin/configurable-http-proxy" ]; then
    echo "installing configurable-http-proxy into $SERVER/proxy"
    npm ci --prefix "$SERVER/proxy" --no-audit --no-fund --loglevel=error
fi

# -- The kernel every student's JupyterLab offers: the shared toolchain on its PATH, one thread
# per kernel (candle's threads spin-wait; on a busy server one thread each runs faster).
libdir="$SERVER/rust/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/lib"
cat > "$SERVER/cargo-config.toml" <<EOF
# Written by scripts/hub/setup-server.sh: every kernel's cargo builds gan_lib's dependencies from
# the server's vendored sources (the same files for every user, so the template's builds fit).
[source.crates-io]
replace-with = "mnist-gan-vendor"

[source.mnist-gan-vendor]
directory = "$SERVER/vendor"
EOF
"$SERVER/venv/bin/python" scripts/install_kernel.py --evcxr "$SERVER/rust/bin/evcxr_jupyter" \
    --template "$SERVER/build/evcxr-template" --build-dir '~/.cache/mnist-gan/hub/evcxr-kernel' \
    --cargo-config "$SERVER/cargo-config.toml" \
    --libdir "$libdir" --env "PATH=$SERVER/rust/bin:/usr/local/bin:/usr/bin:/bin" \
    --env CANDLE_NUM_THREADS=1 --env RAYON_NUM_THREADS=1

# -- gan_lib compiled once, by the kernel the students use (its settings, its cargo configuration).
echo "compiling gan_lib for the students' kernels into $SERVER/build/evcxr-template"
rm -f "$SERVER/build/evcxr-template/.mnist-gan-template"
(cd "$SERVER/project/notebooks" && JUPYTER_PATH="$SERVER/venv/share/jupyter" \
    "$SERVER/venv/bin/python" "$OLDPWD/scripts/warm_kernel.py" .)
date -u +%Y-%m-%dT%H:%M:%SZ > "$SERVER/build/evcxr-template/.mnist-gan-template"

# -- No pop-up asking each student whether JupyterLab may fetch its news (a closed network, a class).
mkdir -p "$SERVER/venv/share/jupyter/lab/settings"
cat > "$SERVER/venv/share/jupyter/lab/settings/overrides.json" <<'EOF'
{ "@jupyterlab/apputils-extension:notification": { "fetchNews": "false", "checkForUpdates": false } }
EOF

# -- The hub's configuration and its private state.
install -m 644 scripts/hub/jupyterhub_config.py "$SERVER/jupyterhub_config.py"
install -d -m 700 "$SERVER/state"
chmod -R a+rX,go-w "$SERVER/project" "$SERVER/rust" "$SERVER/vendor" "$SERVER/venv" \
    "$SERVER/proxy" "$SERVER/build" "$SERVER/cargo-config.toml"
echo "server ready in $(( $(date +%s) - started )) s: $(du -sh "$SERVER" | cut -f1) in $SERVER"
echo "start the hub with: $SERVER/venv/bin/jupyterhub -f $SERVER/jupyterhub_config.py"
