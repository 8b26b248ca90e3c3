"""Gcore's official Python SDK (PyPI `gcore`, pinned in requirements.txt) against a running
`tollgate serve`: every call a Secure Token user makes, each checked through the API and, where it
matters, through the edge.

Run by crates/cli/tests/cli/gcore_tools.rs, which starts the origin and `tollgate serve` and
sets:
  TOLLGATE_API      the control plane's base URL
  GCORE_API_KEY     an API token
  TOLLGATE_EDGE     host:port of the edge
  TOLLGATE_ORIGIN   host:port of a live origin ("origin <path>" bodies)
  TOLLGATE_DEAD     host:port where nothing listens
"""

import base64
import hashlib
import http.client
import os
import time
import unittest

import gcore

API = os.environ["TOLLGATE_API"]
EDGE = os.environ["TOLLGATE_EDGE"]
ORIGIN = os.environ["TOLLGATE_ORIGIN"]
DEAD = os.environ["TOLLGATE_DEAD"]
KEY = "sdk_secret_key"


def client(**kw):
    return gcore.Gcore(api_key=os.environ["GCORE_API_KEY"], base_url=API, **kw)


def sign(path, expires, key=KEY):
    """What a site owner's code does: Gcore's documented token, without the client IP."""
    digest = hashlib.md5(f"{expires}{path} {key}".encode()).digest()
    token = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return f"{path}?md5={token}&expires={expires}"


def edge_get(host, target):
    h, p = EDGE.rsplit(":", 1)
    conn = http.client.HTTPConnection(h, int(p), timeout=10)
    conn.request("GET", target, headers={"Host": host})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def until(what, check, limit=10.0):
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit} s: {what}")
        time.sleep(0.05)


class SecureTokenUser(unittest.TestCase):
    """One customer's day through the SDK, in order."""

    @classmethod
    def setUpClass(cls):
        cls.g = client()
        cls.cdn = cls.g.cdn

    def test_1_resource_with_secure_token_end_to_end(self):
        cdn = self.cdn
        r = cdn.cdn_resources.create(
            cname="sdk.example.com",
            origin=ORIGIN,
            origin_protocol="HTTP",
            secondary_hostnames=["sdk-alt.example.com"],
            name="sdk videos",
            options={
                "secure_key": {"enabled": True, "key": KEY, "type": 2},
                "edge_cache_settings": {"enabled": True, "value": "10m"},
            },
        )
        self.assertIsInstance(r.id, int)
        self.assertIsInstance(r.origin_group, int, "origin makes an origin group")
        self.assertEqual(r.origin_group_name, "sdk.example.com_origin_group")
        self.assertEqual(r.options.secure_key.key, KEY)
        self.assertIn(r.status, ("processed", "active"))
        self.assertTrue(r.created.endswith("Z"), r.created)
        # A script waiting for the deployment finishes.
        until("status active", lambda: cdn.cdn_resources.get(r.id).status == "active")

        now = int(time.time())
        self.assertEqual(edge_get("sdk.example.com", "/v/a.mp4")[0], 403)
        self.assertEqual(edge_get("sdk.example.com", sign("/v/a.mp4", now + 300)), (200, b"origin /v/a.mp4\n"))
        self.assertEqual(edge_get("sdk-alt.example.com", sign("/v/a.mp4", now + 300))[0], 200)
        self.assertEqual(edge_get("sdk.example.com", sign("/v/a.mp4", now - 10))[0], 410)
        self.assertEqual(edge_get("sdk.example.com", sign("/v/a.mp4", now + 300, "wrong_key_1"))[0], 403)

        # Key rotation with update (PATCH): the old key stops signing at once.
        u = cdn.cdn_resources.update(
            r.id, options={"secure_key": {"enabled": True, "key": "sdk_new_key_2", "type": 2}}
        )
        self.assertEqual(u.options.secure_key.key, "sdk_new_key_2")
        self.assertEqual(u.options.edge_cache_settings.value, "10m", "PATCH keeps other options")
        until("edge takes the new key",
              lambda: edge_get("sdk.example.com", sign("/v/b.mp4", now + 300, "sdk_new_key_2"))[0] == 200)
        self.assertEqual(edge_get("sdk.example.com", sign("/v/c.mp4", now + 300))[0], 403)
        type(self).resource = r.id

    def test_2_list_envelope_paging_and_each_filter(self):
        cdn = self.cdn
        ids = []
        for i in range(3):
            x = cdn.cdn_resources.create(
                cname=f"list{i}.example.com", origin=ORIGIN, name=f"list-{i}",
                ssl_enabled=(i == 2), active=(i != 1),
            )
            ids.append(x.id)
        all_ids = [x.id for x in cdn.cdn_resources.list()]
        self.assertEqual(all_ids, sorted(all_ids))
        self.assertTrue(set(ids) <= set(all_ids))
        page = cdn.cdn_resources.list(limit=2)
        self.assertEqual(len(page.results), 2)
        self.assertEqual(page.count, len(all_ids))
        # Auto-paging walks every page by offset.
        self.assertEqual([x.id for x in cdn.cdn_resources.list(limit=2)], all_ids)
        self.assertEqual([x.id for x in cdn.cdn_resources.list(offset=1, limit=1000)], all_ids[1:])

        def found(**kw):
            return [x.id for x in cdn.cdn_resources.list(**kw)]

        self.assertEqual(found(cname="list0.example.com"), [ids[0]])
        self.assertEqual(found(cname="sdk-alt.example.com"), [self.resource], "cname matches secondary hostnames")
        self.assertEqual(found(secondary_hostnames="sdk-alt.example.com"), [self.resource])
        self.assertEqual(found(name="list-1"), [ids[1]])
        self.assertEqual([i for i in found(active=False) if i in ids], [ids[1]])
        self.assertEqual([i for i in found(ssl_enabled=True) if i in ids], [ids[2]])
        self.assertEqual(found(deleted=True), [])
        self.assertEqual(found(status="suspended"), [])
        until("all active", lambda: set(ids) <= set(found(status="active")))
        group = cdn.cdn_resources.get(ids[0]).origin_group
        self.assertEqual(found(origin_group=group), [ids[0]])
        self.assertEqual(found(origin_group_in=f"{group},0"), [ids[0]])
        self.assertEqual(found(origin_protocol="HTTPS"), [])
        self.assertEqual(found(min_created="2999-01-01T00:00:00Z"), [])
        self.assertEqual(set(found(max_created="2999-01-01T00:00:00Z")), set(all_ids))
        self.assertEqual(set(found(min_updated="2000-01-01")), set(all_ids))
        with self.assertRaises(gcore.BadRequestError) as e:
            cdn.cdn_resources.list(extra_query={"colour": "red"})
        self.assertEqual(e.exception.body["field"], "colour")
        for i in ids:
            cdn.cdn_resources.delete(i)

    def test_3_replace_needs_an_origin_group(self):
        cdn = self.cdn
        cur = cdn.cdn_resources.get(self.resource)
        rep = cdn.cdn_resources.replace(
            self.resource,
            origin_group=cur.origin_group,
            origin_protocol="HTTP",
            secondary_hostnames=["sdk-alt.example.com"],
            options={"secure_key": {"enabled": True, "key": "sdk_new_key_2", "type": 2}},
        )
        self.assertEqual(rep.origin_group, cur.origin_group)
        self.assertIsNone(rep.options.edge_cache_settings, "PUT replaces whole")
        self.assertIsNone(rep.name)

    def test_4_origin_groups_and_backups_at_the_edge(self):
        og = self.cdn.origin_groups
        grp = og.create(
            name="sdk-failover",
            sources=[{"source": DEAD, "backup": False, "enabled": True},
                     {"source": ORIGIN, "backup": True, "enabled": True}],
            use_next=True,
            proxy_next_upstream=["error", "timeout"],
        )
        self.assertEqual(grp.name, "sdk-failover")
        self.assertFalse(grp.has_related_resources)
        self.assertEqual(og.get(grp.id).sources[1].backup, True)
        self.assertIn(grp.id, [x.id for x in og.list()])
        self.assertEqual([x.id for x in og.list(name="sdk-failover")], [grp.id])
        r = self.cdn.cdn_resources.create(cname="failover.example.com", origin_group=grp.id)
        self.assertEqual(r.origin_group_name, "sdk-failover")
        until("served by the backup",
              lambda: edge_get("failover.example.com", "/f/1") == (200, b"origin /f/1\n"))
        upd = og.update(grp.id, name="sdk-failover-2")
        self.assertEqual(upd.name, "sdk-failover-2")
        self.assertTrue(upd.has_related_resources)
        rep = og.replace(grp.id, name="sdk-direct", use_next=False,
                         sources=[{"source": ORIGIN, "backup": False, "enabled": True}])
        self.assertEqual(rep.proxy_next_upstream, ["error", "timeout"])
        with self.assertRaises(gcore.BadRequestError) as e:
            og.delete(grp.id)
        self.assertIn("used by resource", e.exception.body["message"])
        self.cdn.cdn_resources.delete(r.id)
        og.delete(grp.id)
        with self.assertRaises(gcore.NotFoundError):
            og.get(grp.id)
        with self.assertRaises(gcore.BadRequestError) as e:
            og.create(name="bad", sources=[{"source": "not a host"}])
        self.assertEqual(e.exception.body["field"], "sources[0].source")

    def test_5_purge_statuses_and_prefetch(self):
        cdn = self.cdn
        res = cdn.cdn_resources
        exp = int(time.time()) + 300
        target = sign("/p/a.jpg", exp, "sdk_new_key_2")
        self.assertEqual(edge_get("sdk.example.com", target)[0], 200)
        res.purge(self.resource, urls=["/p/a.jpg"])
        res.purge(self.resource, paths=["*.jpg", "/p/*"])
        res.purge(self.resource, paths=[])
        statuses = cdn.list_purge_statuses(cname="sdk.example.com")
        kinds = [s.purge_type for s in statuses]
        self.assertEqual(kinds[:3], ["purge_all", "purge_by_pattern", "purge_by_url"])
        until("purges done", lambda: all(
            s.status == "Successful" for s in cdn.list_purge_statuses(cname="sdk.example.com")))
        self.assertEqual(statuses.results[2].resource.cname, "sdk.example.com")
        res.prefetch(self.resource, paths=["/p/big.bin"])
        with self.assertRaises(gcore.BadRequestError) as e:
            res.purge(self.resource, urls=["no-slash"])
        self.assertEqual(e.exception.body["field"], "urls[0]")

    def test_6_errors_name_the_field(self):
        res = self.cdn.cdn_resources
        with self.assertRaises(gcore.BadRequestError) as e:
            res.create(cname="short.example.com", origin=ORIGIN,
                       options={"secure_key": {"enabled": True, "key": "short", "type": 2}})
        self.assertEqual(e.exception.body["field"], "options.secure_key.key")
        with self.assertRaises(gcore.BadRequestError) as e:
            res.create(cname="cors.example.com", origin=ORIGIN,
                       options={"force_return": {"enabled": True, "code": 403, "body": "no"}})
        self.assertIn("not supported by Tollgate", e.exception.body["message"])
        with self.assertRaises(gcore.BadRequestError) as e:
            res.create(cname="sdk.example.com", origin=ORIGIN)
        self.assertEqual(e.exception.body["code"], "conflict")
        with self.assertRaises(gcore.NotFoundError):
            res.get(999999)
        with self.assertRaises(gcore.InternalServerError) as e:
            client(max_retries=0).cdn.cdn_resources.rules.list(self.resource)
        self.assertEqual(e.exception.status_code, 501)
        self.assertIn("not supported by Tollgate", e.exception.body["message"])

    def test_7_delete(self):
        res = self.cdn.cdn_resources
        res.delete(self.resource)
        with self.assertRaises(gcore.NotFoundError):
            res.get(self.resource)
        until("edge drops it", lambda: edge_get("sdk.example.com", "/v/a.mp4")[0] == 404)


if __name__ == "__main__":
    unittest.main(verbosity=2)
