"""Run an Argo CD `health.lua` the way Argo CD runs it, with lupa's Lua 5.1 runtime (test helper).

Argo CD (util/lua/lua.go) runs health scripts in gopher-lua, a Lua 5.1: the live object becomes
the global `obj` (maps and lists as tables, numbers as float64, null as nil), the script's
returned table becomes `{status, message}`, and a status outside Argo CD's set becomes
`Unknown` "Lua returned an invalid health status". A script installed from argocd-cm runs with
only the base, table, package and a safe os library unless `useOpenLibs` is set; this runner
gives the script exactly that (no string, math or debug library, no string methods), so a
script that passes here also runs from argocd-cm. The object goes through JSON first, as it
does in Argo CD (YAML timestamps stay strings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import yaml

ROOT = Path(__file__).resolve().parents[3]
CUSTOMIZATIONS = ROOT / "deploy" / "argocd"
HEALTH_STATUSES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
INVALID_STATUS = "Lua returned an invalid health status"

_SANDBOX = """
local safe_os = { time = os.time, date = os.date, clock = os.clock }
local base = { "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
               "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber",
               "tostring", "type", "unpack", "xpcall", "_VERSION" }
debug.setmetatable("", nil)  -- gopher-lua gives strings methods only with the string library
return function(script, object)
  local env = { table = table, os = safe_os, obj = object }
  for _, name in ipairs(base) do env[name] = _G[name] end
  env._G = env
  local chunk, problem = loadstring(script, "health.lua")
  if chunk == nil then error(problem, 0) end
  setfenv(chunk, env)
  return chunk()
end
"""


@dataclass(frozen=True)
class Health:
    status: str
    message: str = ""


class LuaScriptError(RuntimeError):
    """The script failed to compile or raised; Argo CD shows the resource as Unknown."""


class HealthScript:
    """One compiled-on-demand health.lua, runnable against many objects."""

    def __init__(self, source: str):
        self.source = source
        self._runtime = lua51.LuaRuntime(unpack_returned_tuples=False)
        self._run = self._runtime.execute(_SANDBOX)

    @classmethod
    def for_kind(cls, kind: str, group: str = "modelops.io") -> "HealthScript":
        return cls((CUSTOMIZATIONS / group / kind / "health.lua").read_text())

    def health(self, obj: dict) -> Health:
        as_json = json.loads(json.dumps(obj, default=_json_default))
        try:
            result = self._run(self.source, self._to_lua(as_json))
        except lua51.LuaError as error:
            raise LuaScriptError(str(error)) from None
        kind = lua51.lua_type(result)
        if kind != "table":
            raise LuaScriptError(f"expect table output from Lua script, not {kind}")
        status, message = result["status"], result["message"]
        if status not in HEALTH_STATUSES:
            return Health("Unknown", INVALID_STATUS)
        return Health(status, "" if message is None else str(message))

    def _to_lua(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self._runtime.table_from(
                {k: self._to_lua(v) for k, v in value.items() if v is not None})
        if isinstance(value, list):
            return self._runtime.table_from([self._to_lua(v) for v in value if v is not None])
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        return float(value)  # gopher-lua numbers are float64


def _json_default(value: Any) -> str:
    if hasattr(value, "isoformat"):  # a YAML timestamp: Argo CD's YAML-to-JSON keeps the text
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


@dataclass(frozen=True)
class HealthCase:
    kind: str
    input_path: Path
    expected: Health


def health_cases(kind: str, group: str = "modelops.io") -> list[HealthCase]:
    """Every case of `<group>/<kind>/health_test.yaml`, in Argo CD's test format."""
    folder = CUSTOMIZATIONS / group / kind
    tests = yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]
    return [HealthCase(kind, folder / t["inputPath"],
                       Health(t["healthStatus"]["status"], t["healthStatus"].get("message", "")))
            for t in tests]


def load_object(path: Path) -> dict:
    return yaml.safe_load(path.read_text())
