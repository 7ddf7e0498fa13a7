"""The local environment: real redis-server, PostgreSQL and nginx daemons on loopback.

Each resource gets ``<state_dir>/local/<name>/`` holding its data, generated
config, log and pid file, plus ``resource.json``, the inventory entry it was
started with. Everything needed to find, probe and stop a server is therefore on
disk: ``opsgraph up`` starts daemons and exits, and a later ``opsgraph down`` (a new
process, possibly after the inventory was edited) still stops exactly what was
started. Deleting the state folder removes every trace. No Docker involved.
"""

from opsgraph.tools.environments.local.nginx_server import nginx_config
from opsgraph.tools.environments.local.process import LOOPBACK, LocalStackError, ProcessStatus
from opsgraph.tools.environments.local.stack import LocalStack, Progress

__all__ = ["LOOPBACK", "LocalStack", "LocalStackError", "ProcessStatus", "Progress", "nginx_config"]
