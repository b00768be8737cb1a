"""The ``dataengine`` command-line program (wires engine, pipelines and web together)."""
