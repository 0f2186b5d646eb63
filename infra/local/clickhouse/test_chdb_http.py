"""Tests of chdb_http.py's own rules (Host/Origin checks, read-only GET, readonly limits, --user).

    python3 -m unittest infra/local/clickhouse/test_chdb_http.py

chdb is replaced by a fake session that records what reaches it, so neither chdb nor a data
directory is needed; the adapter is served on a free port of 127.0.0.1 for the HTTP cases.
"""

import base64
import http.client
import os
import sys
import threading
import types
import unittest
from http.server import ThreadingHTTPServer


class FakeResult:
    def __init__(self, data):
        self.data = data

    def bytes(self):
        return self.data


class FakeSession:
    """Answers version() and getSetting(); records every other statement."""

    def __init__(self, path=None):
        self.executed = []

    def query(self, sql, fmt, params=None):
        if sql == "SELECT version()":
            return FakeResult(b"26.0.0.0\n")
        if sql.startswith("SELECT toString(getSetting("):
            return FakeResult(b"0\n")
        if not sql.startswith(("USE ", "SET ")):
            self.executed.append(sql)
        return FakeResult(b"ok\n")


sys.modules["chdb"] = types.ModuleType("chdb")
sys.modules["chdb.session"] = types.SimpleNamespace(Session=FakeSession)
sys.modules["chdb"].session = sys.modules["chdb.session"]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chdb_http  # noqa: E402


class PureRules(unittest.TestCase):
    def test_get_is_readonly_and_readonly_0_does_not_undo_it(self):
        self.assertEqual(chdb_http.effective_settings("GET", {})["readonly"], "2")
        self.assertEqual(chdb_http.effective_settings("GET", {"readonly": "0"})["readonly"], "2")
        self.assertEqual(chdb_http.effective_settings("GET", {"readonly": "1"})["readonly"], "1")
        self.assertNotIn("readonly", chdb_http.effective_settings("POST", {}))
        self.assertEqual(chdb_http.effective_settings("POST", {"readonly": "0"})["readonly"], "0")

    def test_readonly_accepts_reads(self):
        for sql in ("SELECT version()", " with x AS (SELECT 1) SELECT * FROM x", "SHOW TABLES",
                    "DESCRIBE TABLE t", "EXISTS TABLE t", "EXPLAIN SELECT 1", "(SELECT 1)",
                    "SELECT 1;", "SELECT 1 ;  \n", "SELECT 1 FORMAT RowBinaryWithNamesAndTypes",
                    "SELECT fingerprint, profile FROM incidents WHERE x = 'a'",
                    # Bound values are string literals: what is inside one is data.
                    "SELECT 1 FROM t WHERE tenant = '!;J' AND c = 'x; DROP TABLE t' AND d = 'it''s file(x)'",
                    "SELECT 1 FROM t WHERE c = 'a\\';b'"):
            chdb_http.check_readonly(sql)

    def test_readonly_refuses_writes_outfile_table_functions_and_statements(self):
        for sql in ("INSERT INTO t VALUES (1)", "DROP TABLE t", "CREATE TABLE t (x UInt8) ENGINE = Memory",
                    "SELECT 1 INTO OUTFILE '/tmp/x'", "select 1 into\toutfile '/tmp/x'",
                    "SELECT * FROM file('/etc/passwd', LineAsString)", "SELECT * FROM url('http://x', CSV)",
                    "SELECT * FROM S3 ('http://x')", "SELECT * FROM remote('h', system.one)",
                    "SELECT * FROM remoteSecure('h', system.one)", "SELECT * FROM executable('x', CSV, 'a String')",
                    "SELECT file('/etc/passwd')", "SELECT 1; DROP TABLE t", "SELECT 1;SELECT 2",
                    "SELECT 'a'; DROP TABLE t", "SELECT * FROM `file`('/etc/passwd', LineAsString)",
                    'SELECT * FROM "url"(\'http://x\', CSV)', "SELECT * FROM file/**/('/etc/passwd')",
                    "SELECT 1 -- x\n; DROP TABLE t"):
            with self.assertRaises(chdb_http.QueryError, msg=sql) as raised:
                chdb_http.check_readonly(sql)
            self.assertEqual(raised.exception.code, 164)

    def test_host_must_name_this_server(self):
        refusal = chdb_http.request_refusal
        for host in ("127.0.0.1:8123", "localhost:8123", "[::1]:8123", "LOCALHOST:8123"):
            self.assertIsNone(refusal({"Host": host}, 8123), host)
        for host in ("evil.example:8123", "127.0.0.1", "localhost:8124", "127.0.0.1.nip.io:8123", "", None):
            headers = {} if host is None else {"Host": host}
            self.assertIsNotNone(refusal(headers, 8123), host)
        self.assertIsNone(refusal({"Host": "localhost"}, 80))

    def test_ping_takes_any_local_host(self):
        refusal = chdb_http.request_refusal
        for host in ("127.0.0.1", "localhost:1", "[::1]:9"):
            self.assertIsNone(refusal({"Host": host}, 8123, ping=True), host)
        for host in ("evil.example:8123", "evil.example", ""):
            self.assertIsNotNone(refusal({"Host": host}, 8123, ping=True), host)

    def test_origin_and_fetch_site(self):
        refusal = chdb_http.request_refusal
        base = {"Host": "127.0.0.1:8123"}
        self.assertIsNone(refusal({**base, "Origin": "http://127.0.0.1:8123"}, 8123))
        self.assertIsNone(refusal({**base, "Origin": "http://localhost:8123"}, 8123))
        self.assertIsNone(refusal({**base, "Sec-Fetch-Site": "same-origin"}, 8123))
        self.assertIsNone(refusal({**base, "Sec-Fetch-Site": "none"}, 8123))
        for extra in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:3000"},
                      {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
            self.assertIsNotNone(refusal({**base, **extra}, 8123), extra)


class Credentials(unittest.TestCase):
    """presented_credentials and Auth, without HTTP."""

    def test_the_three_ways_and_the_default(self):
        creds = chdb_http.presented_credentials
        self.assertEqual(creds({"X-ClickHouse-User": "quench", "X-ClickHouse-Key": "pw"}, ""), (b"quench", b"pw"))
        basic = "Basic " + base64.b64encode(b"quench:p:w").decode()
        self.assertEqual(creds({"Authorization": basic}, ""), (b"quench", b"p:w"))
        self.assertEqual(creds({}, "query=SELECT%201&user=quench&password=p%26w%2B"), (b"quench", b"p&w+"))
        self.assertEqual(creds({}, "query=SELECT%201"), (b"default", b""))
        # What the Rust crate sends by default: user default, an empty key.
        self.assertEqual(creds({"X-ClickHouse-User": "default", "X-ClickHouse-Key": ""}, ""), (b"default", b""))
        # Empty headers are as if absent, as in ClickHouse.
        self.assertEqual(creds({"X-ClickHouse-User": "", "X-ClickHouse-Key": ""}, "user=quench"), (b"quench", b""))

    def test_mixed_or_malformed_credentials_are_refused(self):
        basic = "Basic " + base64.b64encode(b"quench:s3cret-pw").decode()
        for headers, query in (({"X-ClickHouse-User": "quench", "Authorization": basic}, ""),
                               ({"X-ClickHouse-User": "quench"}, "password=s3cret-pw"),
                               ({"Authorization": basic}, "user=quench"),
                               ({"X-ClickHouse-Key": "s3cret-pw"}, ""),
                               ({"Authorization": "Bearer s3cret-pw"}, ""),
                               ({"Authorization": "Basic !!!"}, ""),
                               ({"Authorization": "Basic " + base64.b64encode(b":s3cret-pw").decode()}, ""),
                               ({}, "user=&password=s3cret-pw")):
            with self.assertRaises(chdb_http.QueryError, msg=(headers, query)) as raised:
                chdb_http.presented_credentials(headers, query)
            self.assertEqual(raised.exception.code, 516)
            self.assertNotIn("s3cret-pw", str(raised.exception))

    def test_auth_check(self):
        auth = chdb_http.Auth("quench", "s3cret")
        self.assertIsNone(auth.check({"X-ClickHouse-User": "quench", "X-ClickHouse-Key": "s3cret"}, ""))
        self.assertEqual(auth.check({"X-ClickHouse-User": "quench", "X-ClickHouse-Key": "s3cre"}, "").code, 516)
        self.assertEqual(auth.check({"X-ClickHouse-User": "quenc", "X-ClickHouse-Key": "s3cret"}, "").code, 516)
        self.assertEqual(auth.check({}, "").code, 194)

    def test_auth_from_takes_the_password_from_the_environment_only(self):
        self.assertIsNone(chdb_http.auth_from(None, {chdb_http.PASSWORD_ENV: "x"}))
        environ = {chdb_http.PASSWORD_ENV: "s3cret"}
        auth = chdb_http.auth_from("quench", environ)
        self.assertEqual((auth.user, auth.password), (b"quench", b"s3cret"))
        self.assertNotIn(chdb_http.PASSWORD_ENV, environ, "taken out of the environment")
        for user, env in (("quench", {}), ("", {chdb_http.PASSWORD_ENV: "x"})):
            with self.assertRaises(SystemExit):
                chdb_http.auth_from(user, env)


class ServedCase(unittest.TestCase):
    """Serves the adapter, with the fake engine, on a free port; auth is passed to make_handler."""

    auth = None

    @classmethod
    def setUpClass(cls):
        cls.engine = chdb_http.Engine("unused")
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), chdb_http.make_handler(cls.engine, cls.auth))
        cls.server.daemon_threads = True
        cls.port = cls.server.server_address[1]
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def setUp(self):
        self.engine.session.executed.clear()
        self._stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # the adapter logs each request

    def tearDown(self):
        sys.stdout.close()
        sys.stdout = self._stdout

    def request(self, method, path, body=None, headers=None, host="default"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host == "default":
            host = f"127.0.0.1:{self.port}"
        if host is not None:
            conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        response = conn.getresponse()
        result = response.status, response.getheader("X-ClickHouse-Exception-Code"), response.read()
        self.last_headers = response.headers
        conn.close()
        return result


class OverHttp(ServedCase):
    def test_get_select_and_ping(self):
        self.assertEqual(self.request("GET", "/?query=SELECT%20version()")[0], 200)
        self.assertEqual(self.request("GET", "/ping"), (200, None, b"Ok.\n"))
        self.assertEqual(self.request("GET", "/ping", host="localhost")[0], 200)

    def test_get_write_is_refused_even_with_readonly_0(self):
        for query in ("DROP%20TABLE%20t", "DROP%20TABLE%20t&readonly=0", "SELECT%201;DROP%20TABLE%20t"):
            status, code, _ = self.request("GET", f"/?query={query}")
            self.assertEqual((status, code), (403, "164"), query)
        self.assertEqual(self.engine.session.executed, [])

    def test_post_writes_unless_readonly(self):
        self.assertEqual(self.request("POST", "/", b"CREATE TABLE t (x UInt8) ENGINE = Memory")[0], 200)
        self.assertEqual(self.request("POST", "/?readonly=2", b"SELECT 1 INTO OUTFILE '/tmp/x'")[:2], (403, "164"))
        # A query in the URL and a body are one text under readonly: the body cannot smuggle a write.
        self.assertEqual(self.request("POST", "/?readonly=1&query=SELECT%201", b"; DROP TABLE t")[:2], (403, "164"))
        self.assertEqual(self.engine.session.executed, ["CREATE TABLE t (x UInt8) ENGINE = Memory"])

    def test_foreign_host_origin_and_fetch_site_are_refused(self):
        cases = [({}, "evil.example:%d"), ({}, None), ({"Origin": "http://evil.example"}, "default"),
                 ({"Sec-Fetch-Site": "cross-site"}, "default")]
        for headers, host in cases:
            host = host % self.port if host and "%d" in host else host
            status, code, body = self.request("POST", "/", b"DROP TABLE t", headers, host)
            self.assertEqual((status, code), (403, "516"), (headers, host))
            self.assertIn(b"AUTHENTICATION_FAILED", body)
        self.assertEqual(self.request("GET", "/ping", host="evil.example")[:2], (403, "516"))
        self.assertEqual(self.engine.session.executed, [])

    def test_credentials_are_ignored_without_user(self):
        basic = "Basic " + base64.b64encode(b"anyone:wrong").decode()
        for path, headers in (("/?query=SELECT%201", {"X-ClickHouse-User": "default", "X-ClickHouse-Key": ""}),
                              ("/?query=SELECT%201", {"X-ClickHouse-User": "bob", "X-ClickHouse-Key": "wrong"}),
                              ("/?query=SELECT%201", {"Authorization": basic}),
                              ("/?query=SELECT%201&user=bob&password=wrong", {}),
                              ("/?query=SELECT%201", {})):
            self.assertEqual(self.request("GET", path, headers=headers), (200, None, b"ok\n"), (path, headers))
        self.assertEqual(self.engine.session.executed, ["SELECT 1"] * 5)


PASSWORD = "0123456789abcdef-the-password"
WRONG = "wrong-password-9876"


class OverHttpWithUser(ServedCase):
    auth = chdb_http.Auth("quench", PASSWORD)

    def basic(self, user, password):
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    def assert_refused(self, result, status, code):
        self.assertEqual(result[:2], (status, code))
        body = result[2]
        self.assertIn(b"(REQUIRED_PASSWORD)" if code == "194" else b"(AUTHENTICATION_FAILED)", body)
        self.assertNotIn(PASSWORD.encode(), body)
        self.assertNotIn(WRONG.encode(), body)
        self.assertEqual(self.last_headers.get("Connection"), "close")

    def test_each_way_of_sending_the_credentials_is_accepted(self):
        for path, headers in (("/?query=SELECT%201", {"X-ClickHouse-User": "quench", "X-ClickHouse-Key": PASSWORD}),
                              ("/?query=SELECT%201", self.basic("quench", PASSWORD)),
                              (f"/?query=SELECT%201&user=quench&password={PASSWORD}", {})):
            self.assertEqual(self.request("GET", path, headers=headers), (200, None, b"ok\n"), headers)
        headers = {"X-ClickHouse-User": "quench", "X-ClickHouse-Key": PASSWORD}
        self.assertEqual(self.request("POST", "/", b"CREATE TABLE t (x UInt8) ENGINE = Memory", headers)[0], 200)
        self.assertEqual(self.engine.session.executed,
                         ["SELECT 1"] * 3 + ["CREATE TABLE t (x UInt8) ENGINE = Memory"])

    def test_a_wrong_password_or_user_is_refused_with_516(self):
        for method, path, headers in (
                ("GET", "/?query=SELECT%201", {"X-ClickHouse-User": "quench", "X-ClickHouse-Key": WRONG}),
                ("GET", "/?query=SELECT%201", self.basic("quench", WRONG)),
                ("GET", f"/?query=SELECT%201&user=quench&password={WRONG}", {}),
                ("POST", "/", {"X-ClickHouse-User": "quench", "X-ClickHouse-Key": WRONG}),
                ("POST", "/", {"X-ClickHouse-User": "quench", "X-ClickHouse-Key": ""}),
                ("POST", "/", {"X-ClickHouse-User": "bob", "X-ClickHouse-Key": PASSWORD}),
                ("POST", "/?user=quench", {})):
            result = self.request(method, path, b"DROP TABLE t" if method == "POST" else None, headers)
            self.assert_refused(result, 403, "516")
            self.assertIn(b"password is incorrect, or there is no user with such name", result[2])
        self.assertEqual(self.engine.session.executed, [])

    def test_no_credentials_or_the_default_user_is_refused_with_401(self):
        # As ClickHouse refuses the user `default` when it has a password: 401, code 194, a Basic challenge.
        for headers in ({}, {"X-ClickHouse-User": "default", "X-ClickHouse-Key": ""}, self.basic("default", WRONG)):
            result = self.request("POST", "/", b"DROP TABLE t", headers)
            self.assert_refused(result, 401, "194")
            self.assertTrue(result[2].startswith(b"Code: 194. DB::Exception: default: Authentication failed"), result)
            self.assertEqual(self.last_headers.get("WWW-Authenticate"), 'Basic realm="ClickHouse server HTTP API"')
        self.assert_refused(self.request("GET", "/?query=SELECT%201"), 401, "194")
        self.assertEqual(self.engine.session.executed, [])

    def test_mixed_ways_and_other_schemes_are_refused(self):
        both = {"X-ClickHouse-User": "quench", "X-ClickHouse-Key": PASSWORD, **self.basic("quench", PASSWORD)}
        for path, headers in (("/", both), (f"/?password={PASSWORD}", self.basic("quench", PASSWORD)),
                              ("/", {"Authorization": f"Bearer {PASSWORD}"})):
            result = self.request("POST", path, b"DROP TABLE t", headers)
            self.assert_refused(result, 403, "516")
            self.assertIn(b"Invalid authentication", result[2])
        self.assertEqual(self.engine.session.executed, [])

    def test_ping_and_root_stay_open(self):
        self.assertEqual(self.request("GET", "/ping"), (200, None, b"Ok.\n"))
        self.assertEqual(self.request("GET", "/"), (200, None, b"Ok.\n"))
        # The Host check still comes first.
        self.assertEqual(self.request("GET", "/?query=SELECT%201", host="evil.example")[:2], (403, "516"))

    def test_refusals_are_not_taken_as_statements(self):
        # A refused POST's body is never read, and the connection is closed after the answer.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", "/", b"DROP TABLE t", {"X-ClickHouse-User": "quench", "X-ClickHouse-Key": WRONG})
        response = conn.getresponse()
        self.assertEqual(response.status, 403)
        response.read()
        self.assertTrue(response.will_close)
        conn.close()
        self.assertEqual(self.engine.session.executed, [])


if __name__ == "__main__":
    unittest.main()
