def index():\n    return "ok"
