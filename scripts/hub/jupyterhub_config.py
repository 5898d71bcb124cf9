"""JupyterHub for a class on one server: each student logs in with their account on this machine,
and gets a JupyterLab of their own, running as them, with the mnist-gan notebooks in ~/mnist-gan.

scripts/hub/setup-server.sh installs everything this file names into SERVER (the folder this file
is copied to, /opt/mnist-gan by default) and copies this file there. Start the hub as root:

    SERVER/venv/bin/jupyterhub -f SERVER/jupyterhub_config.py

Settings from the environment (all optional):
  MNIST_GAN_HUB_URL     where the hub listens (default http://:8000, every address, port 8000;
                        put HTTPS in front of it, or set c.JupyterHub.ssl_cert/ssl_key below)
  MNIST_GAN_HUB_GROUP   the Unix group whose members may log in (default mnist-gan); add students
                        with `useradd -m -G mnist-gan NAME` and `passwd NAME`
  MNIST_GAN_HUB_ADMINS  comma-separated users who may see and stop everyone's servers (the teacher)
  MNIST_GAN_QUICK=1     every notebook in quick mode (about a minute each), for a class running
                        together on a shared CPU
"""
import os
import pwd
import subprocess
from pathlib import Path

SERVER = Path(__file__).resolve().parent
PROJECT = SERVER / "project"

c = get_config()  # noqa: F821 (JupyterHub's loader defines it)

c.JupyterHub.bind_url = os.environ.get("MNIST_GAN_HUB_URL", "http://:8000")
c.JupyterHub.db_url = f"sqlite:///{SERVER}/state/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = str(SERVER / "state" / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.command = [str(SERVER / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(SERVER / "state" / "jupyterhub-proxy.pid")

# Accounts: the machine's own users (PAM), members of one group.
c.JupyterHub.authenticator_class = "pam"
c.LocalAuthenticator.allowed_groups = {os.environ.get("MNIST_GAN_HUB_GROUP", "mnist-gan")}
c.Authenticator.admin_users = {name for name in os.environ.get("MNIST_GAN_HUB_ADMINS", "").split(",") if name}

# Each student's JupyterLab is a process running as that student (JupyterHub's LocalProcessSpawner,
# the spawner of a hub on one machine), from the server's environment, which holds the kernel.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(SERVER / "venv" / "bin" / "jupyterhub-singleuser")]
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab/tree/mnist-gan/notebooks"
# A busy 2-core machine took up to a minute to start a student's server; the defaults allow 30-60 s.
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
c.Spawner.environment = {
    key: os.environ[key] for key in ("MNIST_GAN_QUICK",) if key in os.environ
}


def make_student_folder(spawner):
    """~/mnist-gan for the student about to start: their own copy of the notebooks (never
    overwritten: it holds their work; notebooks added to the project since are copied in), their
    own outputs/, and gan_lib and data as links to the server's, so that every student's kernel
    compiles the same gan_lib, the one compiled once in the template."""
    script = f"""
        set -e
        mkdir -p ~/mnist-gan/outputs
        ln -sfn {PROJECT}/gan_lib ~/mnist-gan/gan_lib
        ln -sfn {PROJECT}/data ~/mnist-gan/data
        cp -R -n {PROJECT}/notebooks ~/mnist-gan/
        chmod -R u+w ~/mnist-gan/notebooks
    """
    account = pwd.getpwnam(spawner.user.name)
    # As the student (their groups only), so that everything made is theirs.
    made = subprocess.run(["/bin/sh", "-c", script], user=account.pw_uid, group=account.pw_gid,
                          extra_groups=[], cwd="/", env={"HOME": account.pw_dir, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"cannot make {account.pw_dir}/mnist-gan: {made.stderr.strip()}")


c.Spawner.pre_spawn_hook = make_student_folder
