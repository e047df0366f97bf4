#!/usr/bin/env python3
"""Regenerates protobuf_table.txt from the Kubernetes generated.proto files of one release.

Usage: protobuf_table.py DIR  where DIR holds meta.proto runtime.proto intstr.proto resource.proto
(k8s.io/apimachinery) and core.proto apps.proto batch.proto rbac.proto autoscalingv1.proto
autoscalingv2.proto policy.proto networking.proto (k8s.io/api),
taken from the same release tag (v0.33.x). Writes the table to stdout.
"""
import re
import sys

ALIAS = {
    "k8s.io.api.core.v1": "core", "k8s.io.api.apps.v1": "apps", "k8s.io.api.batch.v1": "batch",
    "k8s.io.api.rbac.v1": "rbac", "k8s.io.apimachinery.pkg.apis.meta.v1": "meta",
    "k8s.io.api.autoscaling.v1": "autoscalingv1", "k8s.io.api.autoscaling.v2": "autoscalingv2",
    "k8s.io.api.policy.v1": "policy", "k8s.io.api.networking.v1": "networking",
    "k8s.io.apimachinery.pkg.runtime": "runtime", "k8s.io.apimachinery.pkg.util.intstr": "intstr",
    "k8s.io.apimachinery.pkg.api.resource": "resource",
}
SPECIAL = {"meta.Time": "t", "meta.MicroTime": "t", "resource.Quantity": "q", "intstr.IntOrString": "x",
           "runtime.RawExtension": "r", "meta.Duration": "u", "meta.FieldsV1": "r"}
SCALAR = {"string": "s", "int32": "i", "int64": "i", "uint32": "i", "uint64": "i", "bool": "b",
          "bytes": "y", "double": "d", "float": "f"}
ROOTS = ["core.Namespace", "core.ConfigMap", "core.Secret", "core.ServiceAccount", "core.Service", "core.Pod",
         "core.ResourceQuota",
         "apps.Deployment", "batch.Job", "rbac.Role", "rbac.ClusterRole", "rbac.RoleBinding",
         "rbac.ClusterRoleBinding", "autoscalingv1.HorizontalPodAutoscaler",
         "autoscalingv2.HorizontalPodAutoscaler", "policy.PodDisruptionBudget", "policy.Eviction",
         "networking.Ingress"]
# Go structs embedded inline (`json:",inline"`), written `~name` so the decoder merges them.
# (core.Probe.handler and core.EphemeralContainer.ephemeralContainerCommon are inline too; the
# table predates this marker and kubectl's create subcommands do not send them.)
INLINE = {("networking.IngressRule", "ingressRuleValue")}


def parse(files):
    msgs = {}
    for f in files:
        pkg, cur = None, None
        for line in open(f):
            l = line.strip()
            m = re.match(r"package ([\w.]+);", l)
            if m:
                pkg = m.group(1)
            m = re.match(r"message (\w+) \{", l)
            if m:
                cur = pkg + "." + m.group(1)
                msgs[cur] = []
                continue
            if l == "}":
                cur = None
                continue
            m = re.match(r"(optional|repeated)?\s*(map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*(\d+);", l)
            if m and cur:
                msgs[cur].append((m.group(1) or "", m.group(2), m.group(3), int(m.group(4))))
    return msgs


def main():
    d = sys.argv[1]
    names = ["meta", "runtime", "intstr", "resource", "core", "apps", "batch", "rbac", "autoscalingv1",
             "autoscalingv2", "policy", "networking"]
    msgs = parse([f"{d}/{n}.proto" for n in names])
    full = {k.rsplit(".", 1)[0]: k for k in msgs}
    short = lambda f: ALIAS.get(f.rsplit(".", 1)[0], f.rsplit(".", 1)[0]) + "." + f.rsplit(".", 1)[1]
    by_short = {short(k): k for k in msgs}

    def resolve(t, pkg):
        t = t.lstrip(".")
        return t if t in msgs else pkg + "." + t

    out, todo = {}, [by_short[r] for r in ROOTS]
    while todo:
        m = todo.pop()
        s = short(m)
        if s in out or s in SPECIAL:
            continue
        pkg = m.rsplit(".", 1)[0]
        fields = []
        for lab, typ, name, num in msgs[m]:
            rep = "R" if lab == "repeated" else ""
            mm = re.match(r"map<string,\s*([\w.]+)>", typ)
            if mm:
                vt = mm.group(1)
                if vt in SCALAR:
                    fields.append(f"{num}:{name}:M{SCALAR[vt]}")
                elif short(resolve(vt, pkg)) in SPECIAL:
                    # A map of Times (PodDisruptionBudgetStatus.disruptedPods): status only,
                    # never sent by kubectl; left out.
                    pass
                else:
                    r = resolve(vt, pkg)
                    fields.append(f"{num}:{name}:Mm:{short(r)}")
                    todo.append(r)
                continue
            if typ in SCALAR:
                fields.append(f"{num}:{name}:{rep}{SCALAR[typ]}")
                continue
            r = resolve(typ, pkg)
            if short(r) in SPECIAL:
                fields.append(f"{num}:{name}:{rep}{SPECIAL[short(r)]}")
            else:
                shown = "~" + name if (s, name) in INLINE else name
                fields.append(f"{num}:{shown}:{rep}m:{short(r)}")
                todo.append(r)
        out[s] = fields
    for k in sorted(out):
        print(k + "|" + "|".join(out[k]))


if __name__ == "__main__":
    main()
