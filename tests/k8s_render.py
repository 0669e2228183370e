"""Render deploy/k8s overlays offline: the subset of kustomize that our kustomization.yaml files use.

kustomize itself is not installed in CI; this renders resources, namespace, labels, images,
replicas and JSON 6902 patches with a target, and refuses any other field, so a kustomization
using more fails here instead of being rendered wrongly. tests/unit/test_k8s.py compares the result
with `kubectl kustomize` where that command exists.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class RenderError(ValueError):
    pass


def load_documents(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _pod_specs(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if doc["kind"] in WORKLOADS:
        return [spec["template"]["spec"]]
    return []


def _templates(doc: Doc) -> list[Doc]:
    if doc["kind"] == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]]
    if doc["kind"] in WORKLOADS:
        return [doc["spec"]["template"]]
    return []


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise RenderError(f"JSON pointer {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def apply_json6902(doc: Doc, operations: list[Doc]) -> None:
    for op in operations:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if kind == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                node[last] = copy.deepcopy(op["value"])
        elif kind == "replace":
            key: Any = int(last) if isinstance(node, list) else last
            if isinstance(node, dict) and key not in node:
                raise RenderError(f"replace of missing {op['path']}")
            node[key] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise RenderError(f"unsupported patch op {kind}")


def _split_image(image: str) -> tuple[str, str]:
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image, ""
    return name, tag


def render(directory: Path) -> list[Doc]:
    """The documents `kustomize build directory` would print (in no particular order)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise RenderError(f"{directory}: kustomization fields {sorted(unknown)} are not supported by this renderer")
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        docs.extend(render(path) if path.is_dir() else load_documents(path))

    for patch in kustomization.get("patches", []):
        target = patch.get("target")
        if not target or "patch" not in patch or set(target) - {"kind", "name"}:
            raise RenderError(f"{directory}: only inline JSON 6902 patches with a kind/name target are supported")
        matched = [
            d
            for d in docs
            if d["kind"] == target.get("kind", d["kind"])
            and d["metadata"]["name"] == target.get("name", d["metadata"]["name"])
        ]
        if not matched:
            raise RenderError(f"{directory}: patch target {target} matches nothing")
        for doc in matched:
            apply_json6902(doc, yaml.safe_load(patch["patch"]))

    namespace = kustomization.get("namespace")
    if namespace:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = namespace

    for label_set in kustomization.get("labels", []):
        if label_set.get("includeSelectors"):
            raise RenderError("labels with includeSelectors are not supported")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label_set["pairs"])
            if label_set.get("includeTemplates"):
                for template in _templates(doc):
                    template.setdefault("metadata", {}).setdefault("labels", {}).update(label_set["pairs"])

    for image in kustomization.get("images", []):
        for doc in docs:
            for pod in _pod_specs(doc):
                for container in pod.get("containers", []) + pod.get("initContainers", []):
                    name, tag = _split_image(container["image"])
                    if name == image["name"]:
                        new_tag = image.get("newTag", tag)
                        container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")

    for replicas in kustomization.get("replicas", []):
        targets = [d for d in docs if d["metadata"]["name"] == replicas["name"] and "replicas" in d.get("spec", {})]
        if not targets:
            raise RenderError(f"{directory}: replicas for unknown {replicas['name']}")
        for doc in targets:
            doc["spec"]["replicas"] = replicas["count"]
    return docs
