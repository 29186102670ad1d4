"""What a container of a stand-in pod sees, resolved from its spec as the kubelet resolves it: the
environment (``envFrom`` first, then ``env``; ``secretKeyRef``, ``configMapKeyRef``, ``fieldRef``)
and the files of ``secret``, ``configMap`` and ``projected`` volumes at their ``volumeMounts``.

A reference to a missing Secret, ConfigMap or key that is not ``optional`` keeps the container
from starting (the kubelet reports ``CreateContainerConfigError`` or the pod stays in
``ContainerCreating``): ``NotRunning`` then, and exec is refused, as on a real cluster.
Not emulated: the service-account token volume, downward-API volumes, ``subPathExpr``, file modes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Lookup = Callable[[str, str, str], dict[str, Any] | None]
"""``(plural, namespace, name)`` -> the object, or None."""

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # what the kubelet accepts (C_IDENTIFIER is stricter)
BASE_FILES = {
    "/etc/hostname": b"{HOSTNAME}\n",
    "/etc/os-release": b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    "/usr/share/nginx/html/index.html": b"<h1>demo web</h1>\n",
}


class NotRunning(Exception):
    """The container cannot have started: a required reference does not resolve."""


@dataclass
class Container:
    name: str
    env: dict[str, str]
    files: dict[str, bytes] = field(default_factory=dict)

    def directories(self) -> set[str]:
        dirs = {"/"}
        for path in self.files:
            parts = path.split("/")
            dirs |= {"/".join(parts[:i]) or "/" for i in range(2, len(parts))}
        return dirs


def _data(obj: dict[str, Any] | None, plural: str) -> dict[str, bytes] | None:
    if obj is None:
        return None
    if plural == "secrets":
        out = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        out.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        return out
    out = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def container_view(pod: dict[str, Any], container: str, lookup: Lookup) -> Container:
    """The container's environment and mounted files; raises NotRunning as the kubelet would."""
    meta, spec = pod["metadata"], pod["spec"]
    ns = meta.get("namespace", "default")
    c = next(c for c in spec["containers"] if c["name"] == container)

    def source(plural: str, ref: dict[str, Any], what: str) -> dict[str, bytes] | None:
        data = _data(lookup(plural, ns, ref.get("name", "")), plural)
        if data is None and not ref.get("optional"):
            raise NotRunning(f'{what} "{ref.get("name")}" not found')
        return data

    env = {"PATH": PATH, "HOSTNAME": meta["name"], "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    for item in c.get("envFrom") or []:
        for kind, plural in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
            if kind in item:
                data = source(plural, item[kind], "secret" if plural == "secrets" else "configmap") or {}
                for key, value in data.items():
                    name = item.get("prefix", "") + key
                    if _ENV_NAME.match(name):  # the kubelet skips keys that are no valid name
                        env[name] = value.decode("utf-8", "replace")
    fields = {"metadata.name": meta["name"], "metadata.namespace": ns, "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", "default")}
    for item in c.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref_from = item.get("valueFrom") or {}
        for kind, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            ref = ref_from.get(kind)
            if ref:
                data = source(plural, ref, "secret" if plural == "secrets" else "configmap")
                if data is not None and ref.get("key") in data:
                    env[item["name"]] = data[ref["key"]].decode("utf-8", "replace")
                elif data is not None and not ref.get("optional"):
                    raise NotRunning(f'couldn\'t find key {ref.get("key")} in {kind[:-6]} {ns}/{ref.get("name")}')
        if "fieldRef" in ref_from:
            env[item["name"]] = fields.get(ref_from["fieldRef"].get("fieldPath", ""), "")
    files = {path: content.replace(b"{HOSTNAME}", meta["name"].encode()) for path, content in BASE_FILES.items()}
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    for mount in c.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise NotRunning(f'volume "{mount["name"]}" is not defined')
        content = _volume_files(volume, source)
        root = mount["mountPath"].rstrip("/")
        sub = mount.get("subPath")
        if sub:
            if sub in content:
                files[root] = content[sub]
            continue
        files.update({f"{root}/{path}": data for path, data in content.items()})
    return Container(container, env, files)


def _volume_files(volume: dict[str, Any], source: Callable[..., dict[str, bytes] | None]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    parts: list[tuple[str, dict[str, Any]]] = []
    if "secret" in volume:
        ref = volume["secret"]
        parts.append(("secrets", {"name": ref.get("secretName"), "items": ref.get("items"),
                                  "optional": ref.get("optional")}))
    if "configMap" in volume:
        parts.append(("configmaps", volume["configMap"]))
    for src in (volume.get("projected") or {}).get("sources") or []:
        if "secret" in src:
            parts.append(("secrets", src["secret"]))
        if "configMap" in src:
            parts.append(("configmaps", src["configMap"]))
    for plural, ref in parts:
        data = source(plural, ref, "secret" if plural == "secrets" else "configmap")
        if data is None:
            continue
        items = ref.get("items")
        if items:
            for item in items:
                if item["key"] not in data:
                    if not ref.get("optional"):
                        raise NotRunning(f'couldn\'t find key {item["key"]} in {plural[:-1]} {ref.get("name")}')
                    continue
                out[item["path"]] = data[item["key"]]
        else:
            out.update(data)
    return out
