"""ClickHouse's HTTP interface, served by the ClickHouse engine of PyPI's chdb-core.

Why this exists: no current ClickHouse server binary can be installed on machines without Docker
that only reach PyPI, crates.io, npm, Maven Central and Debian (Debian's clickhouse-server is 18.16
from 2018 and lacks TTL, DateTime64, Map and window functions). chdb-core embeds the current engine
in-process, so this adapter puts the part of the HTTP protocol that the official Rust `clickhouse`
crate speaks in front of it:

* the query in the `query` URL parameter or in the body; when both, the body is INSERT data;
* `INSERT ... FORMAT <fmt>` bodies (RowBinary and any other input format);
* `default_format` (the crate asks for RowBinaryWithNamesAndTypes to validate schemas);
* `param_<name>` server-side query parameters and every other URL parameter as a setting, for
  that query only; `readonly` is checked here instead (a statement that is not a read is
  refused with code 164), because the engine's session, shared by every client, could not be
  set back from readonly;
* errors as ClickHouse reports them: HTTP status, `X-ClickHouse-Exception-Code`, message body;
* GET is read-only, as in ClickHouse: `readonly=2` unless the URL asks for 1 or 2 (a URL `readonly=0`
  does not undo it).

Under readonly this adapter has limits of its own, on top of "only SELECT, WITH, SHOW, DESCRIBE,
EXISTS and EXPLAIN": it refuses (code 164) `INTO OUTFILE`, the table functions that reach files,
URLs, object stores, other servers or programs (file, url, s3, remote and their kin: see
READONLY_REFUSED_RE) and more than one statement (a `;` followed by anything but spaces). The checks
read the raw text, so such a word or a `;` inside a string literal is refused too.

Every request must name this server in its Host header: 127.0.0.1, localhost or [::1] with the
listening port (`/ping` takes any port), else 403 with code 516; so must an `Origin` header if
there is one, and `Sec-Fetch-Site` may only be `same-origin` or `none`. A web page that a browser on
this machine visits can thus neither reach the adapter through a DNS name of its own (rebinding) nor
send it a cross-site POST.

With `--user NAME` (the password in the environment variable CHDB_HTTP_PASSWORD, never on the
command line, which `ps` shows), every request but `GET /ping` and a `GET /` without a query must
carry that user and password, read as ClickHouse reads them (src/Server/HTTP/authenticateUserByHTTP.cpp):
the headers `X-ClickHouse-User` and `X-ClickHouse-Key`, else HTTP Basic `Authorization`, else the
URL parameters `user` and `password` (no credentials at all: user `default`, empty password); two
of these ways in one request are refused. A wrong user or password answers as ClickHouse 25 and 26
do: HTTP 403 with code 516 (AUTHENTICATION_FAILED), except for the user `default` (which a
production server keeps, with a password): HTTP 401 with code 194 (REQUIRED_PASSWORD) and
`WWW-Authenticate: Basic`. The presented password is never echoed. Without `--user`, credentials
are ignored.

It runs one query at a time (chdb allows one session per data directory) and persists tables in the
directory given by --path. Block-level compression (`compress=1`, `decompress=1`) is refused with a
clear error: configure the client with `Compression::None`. It binds 127.0.0.1 only.
"""

import argparse
import base64
import binascii
import hmac
import os
import re
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import session as chdb_session

# URL parameters that steer the protocol rather than name a setting.
PROTOCOL_PARAMS = {
    "query", "database", "default_format", "query_id", "session_id", "session_timeout",
    "session_check", "user", "password", "role", "wait_end_of_query", "buffer_size",
    "compress", "decompress", "enable_http_compression", "http_native_compression_disable_checksumming_on_decompress",
}

# ClickHouse answers some exception codes with 4xx instead of 500 (src/Server/HTTPHandler.cpp).
STATUS_BY_CODE = {
    # 400: the request itself is wrong
    **{code: 400 for code in (
        6, 16, 26, 27, 32, 33, 34, 35, 36, 38, 41, 43, 44, 47, 53, 62, 69, 70, 72, 115, 117, 131,
        135, 167, 168, 184, 190, 194, 352, 457, 465, 6000)},
    # 404: something named does not exist
    **{code: 404 for code in (46, 50, 60, 81, 83, 107, 158)},
    # 403: permissions and readonly
    **{code: 403 for code in (164, 497, 516)},
    # 401: the user `default` without its password (REQUIRED_PASSWORD)
    194: 401,
}
CODE_RE = re.compile(r"Code:\s*(\d+)")
COMMENT_RE = re.compile(r"--[^\n]*|#[^\n]*|/\*.*?\*/", re.S)
STRING_LITERAL_RE = re.compile(r"'(?:[^'\\]|\\.|'')*'", re.S)
READ_RE = re.compile(r"\s*\(*\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.I)
# Under readonly: what would reach outside the engine's own tables, or a second statement.
READONLY_REFUSED_RE = re.compile(
    r"\bINTO\s+OUTFILE\b"
    r"|\b(file|fileCluster|url|urlCluster|s3|s3Cluster|gcs|azureBlobStorage|azureBlobStorageCluster|hdfs"
    r"|hdfsCluster|remote|remoteSecure|cluster|clusterAllReplicas|mysql|postgresql|mongodb|redis|sqlite"
    r"|jdbc|odbc|executable|python|iceberg\w*|deltaLake\w*|hudi\w*)\s*\("
    r"|;\s*\S",
    re.I)
FORMAT_TAIL_RE = re.compile(r"^(?P<head>.*?)\s+FORMAT\s+(?P<fmt>\w+)\s*;?\s*$", re.S | re.I)


class QueryError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def readonly_error(reason):
    return QueryError(164, f"Code: 164. DB::Exception: Cannot execute query in readonly mode{reason}. (READONLY)")


def check_readonly(sql):
    """Raises the readonly error unless sql is one read that stays inside the engine."""
    if not READ_RE.match(sql):
        raise readonly_error("")
    # Values are bound into the text as string literals; a `;` or a word inside one is data. Quoted
    # names and comments are not: `file`(...) and file/**/(...) are calls all the same.
    text = COMMENT_RE.sub(" ", STRING_LITERAL_RE.sub("''", sql)).replace("`", "").replace('"', "")
    refused = READONLY_REFUSED_RE.search(text)
    if refused:
        raise readonly_error(f": this chdb HTTP adapter refuses {' '.join(refused.group(0).split())!r} under "
                             "readonly (INTO OUTFILE, table functions that reach outside, multiple statements)")


def effective_settings(method, settings):
    """The URL's settings; a GET is read-only (readonly=2 unless the URL asks for 1 or 2)."""
    settings = dict(settings)
    if method == "GET" and settings.get("readonly", "0") in ("0", ""):
        settings["readonly"] = "2"
    return settings


LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def request_refusal(headers, port, ping=False):
    """Why a request may not be served (a message), or None. Against DNS rebinding and CSRF."""
    host = (headers.get("Host") or "").strip().lower()
    allowed = {f"{h}:{port}" for h in LOCAL_HOSTS} | (set(LOCAL_HOSTS) if port == 80 else set())
    if ping:
        allowed |= set(LOCAL_HOSTS)
        name, sep, rest = host.rpartition(":")
        if sep and rest.isdigit() and name in LOCAL_HOSTS:
            allowed.add(host)
    if host not in allowed:
        return (f"Host header {host!r} is not this server: use 127.0.0.1:{port}, localhost:{port} "
                f"or [::1]:{port}" if host else "no Host header")
    origin = headers.get("Origin")
    if origin is not None and origin.strip().lower().rstrip("/") not in {f"http://{a}" for a in allowed}:
        return f"requests from web pages of other origins are refused (Origin {origin!r})"
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin", "none"):
        return f"requests from web pages of other origins are refused (Sec-Fetch-Site {fetch_site!r})"
    return None


PASSWORD_ENV = "CHDB_HTTP_PASSWORD"
AUTH_REALM = "ClickHouse server HTTP API"


def header_bytes(headers, name):
    """A header's raw bytes (http.server decodes header values as ISO-8859-1), b"" when absent."""
    return (headers.get(name) or "").encode("latin-1", "replace")


def authentication_error(message):
    return QueryError(516, f"Code: 516. DB::Exception: {message}. (AUTHENTICATION_FAILED)")


def presented_credentials(headers, query):
    """(user, password) as bytes, taken as ClickHouse takes them; QueryError 516 if they are malformed.

    The X-ClickHouse-User/-Key headers, else HTTP Basic, else the URL parameters `user` and
    `password`, defaulting to user `default` with an empty password; mixing ways is refused."""
    user, key = header_bytes(headers, "X-ClickHouse-User"), header_bytes(headers, "X-ClickHouse-Key")
    # ISO-8859-1 maps each percent-decoded byte to one character: .encode("latin-1") gives them back.
    params = dict(parse_qsl(query, keep_blank_values=True, encoding="latin-1"))
    in_params = "user" in params or "password" in params
    authorization = headers.get("Authorization")
    if user or key:
        if not user:
            raise authentication_error("Got an empty user name from X-ClickHouse HTTP headers")
        for other, present in (("Authorization HTTP header", authorization is not None),
                               ("authentication via parameters", in_params)):
            if present:
                raise authentication_error(f"Invalid authentication: it is not allowed to use X-ClickHouse HTTP "
                                           f"headers and {other} simultaneously")
        return user, key
    if authorization is not None:
        if in_params:
            raise authentication_error("Invalid authentication: it is not allowed to use Authorization HTTP header "
                                       "and authentication via parameters simultaneously")
        scheme, _, info = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            raise authentication_error(f"Invalid authentication: '{printable(scheme)}' HTTP Authorization scheme "
                                       "is not supported")
        try:
            decoded = base64.b64decode(info.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise authentication_error("Invalid authentication: malformed Basic credentials") from None
        user, _, password = decoded.partition(b":")
        if not user:
            raise authentication_error("Got an empty user name from Authorization HTTP header")
        return user, password
    user = params.get("user", "default").encode("latin-1")
    if not user:
        raise authentication_error("Got an empty user name from authentication via parameters")
    return user, params.get("password", "").encode("latin-1")


def printable(text, limit=100):
    """text for a message: control characters replaced, at most limit characters."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class Auth:
    """The one user this adapter accepts (--user, the password from CHDB_HTTP_PASSWORD)."""

    def __init__(self, user, password):
        if not user:
            raise ValueError("the user name is empty")
        self.user, self.password = user.encode(), password.encode()

    def check(self, headers, query):
        """None when the request carries this user and password, else the QueryError to answer."""
        try:
            user, password = presented_credentials(headers, query)
        except QueryError as err:
            return err
        # Both compared, in constant time: neither a user name nor a password prefix shows in the timing.
        user_ok = hmac.compare_digest(user, self.user)
        password_ok = hmac.compare_digest(password, self.password)
        if user_ok and password_ok:
            return None
        name = printable(user.decode("utf-8", "replace"))
        reason = f"{name}: Authentication failed: password is incorrect, or there is no user with such name"
        if name == "default":
            return QueryError(194, f"Code: 194. DB::Exception: {reason}. (REQUIRED_PASSWORD)")
        return authentication_error(reason)


def auth_from(user, environ):
    """The Auth that --user asks for (None without it); the password is taken out of environ."""
    if user is None:
        return None
    if not user:
        raise SystemExit("chdb-http: --user names no user")
    password = environ.pop(PASSWORD_ENV, None)
    if password is None:
        raise SystemExit(f"chdb-http: --user {user} needs the password in the environment variable {PASSWORD_ENV}")
    return Auth(user, password)


class Engine:
    """One chdb session behind a lock: the protocol is concurrent, the engine is not."""

    def __init__(self, path):
        self.session = chdb_session.Session(path)
        self.lock = threading.Lock()
        self.version = self._run("SELECT version()", "TabSeparated").strip().decode()

    def _run(self, sql, fmt, params=None):
        try:
            return self.session.query(sql, fmt, params=params or None).bytes()
        except Exception as exc:  # chdb raises ChdbError carrying ClickHouse's own message
            message = str(exc).strip()
            match = CODE_RE.search(message)
            raise QueryError(int(match.group(1)) if match else 1001, message) from exc

    def execute(self, sql, fmt, database, settings, params, data):
        with self.lock:
            self._run(f"USE `{database.replace('`', '')}`", "TabSeparated")
            previous = {}
            if settings.pop("readonly", "0") != "0":
                if data:
                    # ClickHouse reads a query in the URL and a body as one text: check all of it.
                    sql, data = sql + "\n" + data.decode("utf-8", "replace"), b""
                check_readonly(sql)
            try:
                for name, value in settings.items():
                    if not re.fullmatch(r"\w+", name):
                        raise QueryError(115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
                    previous[name] = self._run(
                        f"SELECT toString(getSetting('{name}'))", "TabSeparatedRaw").rstrip(b"\n").decode()
                    self._run(f"SET {name} = {quote(value)}", "TabSeparated")
                return self._execute_with_data(sql, fmt, params, data)
            finally:
                for name, value in previous.items():
                    self._run(f"SET {name} = {quote(value)}", "TabSeparated")

    def _execute_with_data(self, sql, fmt, params, data):
        if not data:
            return self._run(sql, fmt, params)
        match = FORMAT_TAIL_RE.match(sql)
        if not match:
            # `INSERT INTO t VALUES` with the values in the body
            return self._run(sql + " " + data.decode("utf-8", "replace"), fmt, params)
        with tempfile.NamedTemporaryFile(prefix="chdb-insert-", suffix=".bin") as tmp:
            tmp.write(data)
            tmp.flush()
            infile = f"{match.group('head')} FROM INFILE {quote(tmp.name)} FORMAT {match.group('fmt')}"
            return self._run(infile, fmt, params)


def quote(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_handler(engine, auth=None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "chdb-http"
        # Headers and body go out in two writes: with Nagle's algorithm the second waits for the
        # client's delayed ACK of the first, 40 ms on every answer of a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            pass  # one line per request is written by _answer instead

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path in ("/ping", "/") and "query" not in dict(parse_qsl(url.query)):
                if self._refused(ping=True):
                    return
                return self._send(200, b"Ok.\n", {})
            if self._refused() or self._unauthenticated(url):
                return
            return self._query(url, b"", "GET")

        def do_POST(self):
            url = urlsplit(self.path)
            if self._refused() or self._unauthenticated(url):
                return
            return self._query(url, self._read_body(), "POST")

        def _unauthenticated(self, url):
            """With --user: answers as ClickHouse (403/516, or 401/194 for `default`) and closes the
            connection unless the request carries the user and password."""
            if auth is None:
                return False
            err = auth.check(self.headers, url.query)
            if err is None:
                return False
            status = STATUS_BY_CODE.get(err.code, 403)
            headers = {"X-ClickHouse-Exception-Code": str(err.code), "Connection": "close"}
            if status == 401:
                headers["WWW-Authenticate"] = f'Basic realm="{AUTH_REALM}"'
            # The body, if any, is not read: the connection cannot carry another request.
            self.close_connection = True
            self._send(status, f"{err} (version {engine.version} (chdb-core))\n".encode(), headers)
            self._log(status, f"refused: {err}", time.monotonic())
            return True

        def _refused(self, ping=False):
            """Answers 403 (code 516) and closes the connection when request_refusal says so."""
            reason = request_refusal(self.headers, self.server.server_address[1], ping)
            if reason is None:
                return False
            message = f"Code: 516. DB::Exception: chdb-http: {reason}. (AUTHENTICATION_FAILED)\n".encode()
            # The body, if any, is not read: the connection cannot carry another request.
            self.close_connection = True
            self._send(403, message, {"X-ClickHouse-Exception-Code": "516", "Connection": "close"})
            self._log(403, f"refused: {reason}", time.monotonic())
            return True

        def _read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _query(self, url, body, method):
            started = time.monotonic()
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            try:
                if any(params.get(p) == "1" for p in ("compress", "decompress")) or \
                        self.headers.get("Content-Encoding", "identity") != "identity":
                    raise QueryError(36, "Code: 36. DB::Exception: this chdb HTTP adapter does not "
                                         "support compressed bodies; configure the client with "
                                         "Compression::None. (BAD_ARGUMENTS)")
                if "query" in params:
                    sql, data = params["query"], body
                else:
                    sql, data = body.decode("utf-8"), b""
                if not sql.strip():
                    raise QueryError(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
                fmt = params.get("default_format", "TabSeparated")
                query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
                settings = effective_settings(method, {k: v for k, v in params.items()
                                                       if k not in PROTOCOL_PARAMS and not k.startswith("param_")})
                result = engine.execute(sql, fmt, params.get("database", "default"),
                                        settings, query_params, data)
            except QueryError as err:
                message = f"{err} (version {engine.version} (chdb-core))\n".encode()
                status = STATUS_BY_CODE.get(err.code, 500)
                self._send(status, message, {"X-ClickHouse-Exception-Code": str(err.code)})
                return self._log(status, sql_preview(params, body), started)
            summary = f'{{"elapsed_ns":"{int((time.monotonic() - started) * 1e9)}"}}'
            self._send(200, result, {"X-ClickHouse-Format": fmt, "X-ClickHouse-Summary": summary})
            self._log(200, sql_preview(params, body), started)

        def _send(self, status, payload, headers):
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if status == 200 else "text/plain; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-ClickHouse-Server-Display-Name", "chdb-http")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _log(self, status, sql, started):
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {status} {1000 * (time.monotonic() - started):.1f}ms {sql}",
                  flush=True)

    return Handler


def sql_preview(params, body):
    text = params.get("query") or body[:200].decode("utf-8", "replace")
    return " ".join(text.split())[:160]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="data directory (one adapter per directory)")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", help=f"require this user; its password in the environment variable {PASSWORD_ENV}")
    args = parser.parse_args()
    auth = auth_from(args.user, os.environ)
    os.makedirs(args.path, exist_ok=True)
    engine = Engine(args.path)
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer((args.host, args.port), make_handler(engine, auth))
    server.daemon_threads = True
    print(f"chdb-http: ClickHouse {engine.version} (chdb-core) on http://{args.host}:{args.port}, data in {args.path}"
          + (f", user {args.user} required" if auth else ""), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
