"""RAY_AUTH and RAY_CLIENT_SERVER, against the Ray of the trainer's interpreter.

The Ray version is what :mod:`ot_hpc.skyrl_detect` found in TRAINER_PYTHON (the
``trainer_ray`` that check_skyrl_install passes on: no second subprocess). A Ray without token authentication (< 2.52) is one warning line
naming the version and the risk under ``RAY_AUTH=auto``, and a problem under
``RAY_AUTH=required``. A version that cannot be found here is left to the runner, which
asks again on the compute node (the environment may only exist there after activation).
"""
from __future__ import annotations

from typing import Any, Mapping

from .. import rayauth
from .fields import Context, Fields, Section


def check_ray_auth(context: Context, found: Mapping[str, Any]) -> Section:
    fields = Fields(context.config, context.cwd)
    mode = fields.choice("RAY_AUTH") or "auto"
    client_server = bool(fields.boolean("RAY_CLIENT_SERVER"))
    python = found.get("trainer_python")
    version = found.get("trainer_ray")
    if python:
        if version and not rayauth.supports_token_auth(version):
            risk = rayauth.no_auth_risk(version, python)
            if mode == "required":
                fields.problem("RAY_AUTH", f"is required but {risk}",
                               f"install ray>={rayauth.minimum()} into TRAINER_PYTHON's environment "
                               "(Ray must be the same version on every node and in the driver), "
                               "or RAY_AUTH=auto to run without authentication")
            else:
                fields.warnings.append(f"{risk}; the job runs without Ray authentication "
                                       "(RAY_AUTH=required refuses this)")
    return fields.section(dict(ray_auth=mode, ray_client_server=client_server))
