"""A real WSGI upstream for the path-confusion tests: Flask (Debian python3-flask) run by
Debian's gunicorn (tests/utils/servers.rs `Gunicorn`).

    gunicorn --chdir tests/interop --bind 127.0.0.1:PORT upstream_app:app

Routes, the way an app guarded by the gateway would have them:
  /admin, /admin/, /admin/<path>     -> handler "admin"   (the gateway lets admins only)
  /public, /public/, /public/<path>  -> handler "public"  (the gateway lets everyone)
  anything else                      -> handler "other"

Every answer is 200 with JSON: which handler ran, the path as werkzeug routed it
(gunicorn percent-decodes the target into PATH_INFO, %2F included), the raw target that
gunicorn read (RAW_URI), the method, and the request headers as the app sees them (WSGI
folds '-' and '_' alike into HTTP_X_..., so `X_Remote_User` may show as X-Remote-User).
"""

from flask import Flask, jsonify, request

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

app = Flask(__name__)
# Routes answer /admin and /admin/ alike, no 308 redirect to the slash form.
app.url_map.strict_slashes = False


def answer(handler):
    env = request.environ
    body = {
        "handler": handler,
        "path": request.path,
        "raw_uri": env.get("RAW_URI") or env.get("REQUEST_URI"),
        "method": request.method,
        "headers": {name: value for name, value in request.headers.items()},
    }
    return jsonify(body)


@app.route("/admin", methods=METHODS)
@app.route("/admin/", methods=METHODS)
@app.route("/admin/<path:rest>", methods=METHODS)
def admin(rest=None):
    return answer("admin")


@app.route("/public", methods=METHODS)
@app.route("/public/", methods=METHODS)
@app.route("/public/<path:rest>", methods=METHODS)
def public(rest=None):
    return answer("public")


@app.route("/", methods=METHODS)
@app.route("/<path:p>", methods=METHODS)
def other(p=None):
    return answer("other")
