"""The ceiling: a functions-framework HTTP endpoint that only answers 200."""

import flask
import functions_framework


@functions_framework.http
def bare(request: flask.Request) -> flask.Response:
    request.get_data()
    return flask.Response('{"status": "ok"}', status=200, mimetype="application/json")
