"""The module named by this package's ``harmowam`` entry point."""

from harmowam.hookspecs import hookimpl


@hookimpl
def harmowam_register_experts():
    from harmowam_mlp_expert.mlp_expert import MLPExpert

    return {"mlp": MLPExpert}
