"""One module per user-facing job beside training (compare, …); light imports only.

Each command in ``COMMANDS`` has a ``NAME_cli.py`` module with ``register(subparsers)``: it
adds the subcommand and its arguments (argparse only, nothing heavy at import) and sets
``func`` to a function that takes the parsed arguments and returns an exit code, raising
``ClmtuneError`` subclasses for bad input. ``backend/cli.py`` registers them in this order.
"""

COMMANDS: tuple[str, ...] = ("compare", "preview", "generate", "inspect_eval", "export_job",
                             "export")
"""``compare RUN RUN …``: runs side by side. ``preview FILE``: what the data makes, sample
blocks, warnings and a memory estimate, before training. ``generate RUN --prompt TEXT``:
complete prompts with a final model or checkpoint. ``inspect-eval RUN``: the evaluation
blocks with the highest loss. ``export-job FILE --slurm``: a cluster job script for the
same training. ``export RUN OUT``: a clean model folder (merged LoRA, adapter or full model)
with a model card."""
