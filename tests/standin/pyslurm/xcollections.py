# Stand-in for pyslurm 25.11.2 pyslurm/xcollections.pyx (MultiClusterMap and its views):
# data is {cluster: {id: item}}; iterating the map yields keys; values() yields the items
# of every cluster; coll[id] looks in the local cluster; coll[(cluster, id)] is explicit.
from __future__ import annotations

from . import settings


class MultiClusterMap:
    __slots__ = ("data", "_typ", "_val_type", "_id_attr", "_cluster")

    def __init__(self, data=None, typ=None, val_type=None, id_attr=None):
        self.data = {}
        self._typ = typ
        self._val_type = val_type
        self._id_attr = id_attr
        self._cluster = settings.LOCAL_CLUSTER
        if data is not None:
            raise NotImplementedError("stand-in: building a collection from data is not modelled")

    def _add(self, cluster, key, item):
        self.data.setdefault(cluster, {})[key] = item

    def _get_key_and_cluster(self, item):
        if isinstance(item, tuple) and len(item) == 2:
            return item
        cluster = self._cluster if (not self.data or self._cluster in self.data) else next(iter(self.data))
        return cluster, item

    def __getitem__(self, item):
        if item in self.data:
            return self.data[item]
        cluster, key = self._get_key_and_cluster(item)
        return self.data[cluster][key]

    def get(self, key, default=None, cluster=None):
        if cluster is None:
            cluster, key = self._get_key_and_cluster(key)
        return self.data.get(cluster, {}).get(key, default)

    def __len__(self):
        return sum(len(d) for d in self.data.values())

    def __bool__(self):
        return bool(self.data)

    def __contains__(self, item):
        if isinstance(item, tuple):
            return self.get(item) is not None
        return any(item in d for d in self.data.values())

    def keys(self):
        return [key for d in self.data.values() for key in d]

    def __iter__(self):
        return iter(self.keys())

    def values(self):
        return [item for d in self.data.values() for item in d.values()]

    def items(self):
        return [(key, item) for d in self.data.values() for key, item in d.items()]

    def clusters(self):
        return list(self.data)

    def __repr__(self):
        data = ", ".join(map(repr, self.values()))
        return f"pyslurm.{self._typ}({data})"
