"""The pluggy markers bound to the project name "kart"."""

import pluggy

PROJECT_NAME = "kart"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
