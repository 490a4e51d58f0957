"""``codemill model serve``: any model backend as an OpenAI-compatible endpoint."""

from __future__ import annotations

import typer

from codemill.cli.app import State, err_console, handle_errors


def register(app: typer.Typer) -> None:
    model = typer.Typer(help="Model backends: serve one over an OpenAI-compatible API.",
                        no_args_is_help=True)
    app.add_typer(model, name="model")

    @model.command()
    def serve(
        spec: str = typer.Option("smollm2", "--model", "-m",
                                 help="openai:MODEL@URL, scripted:NAME_OR_PATH, "
                                      "transformers:PATH or smollm2."),
        host: str = typer.Option("127.0.0.1", help="Address to bind (no authentication)."),
        port: int = typer.Option(8000, help="Port to bind (0 picks a free one)."),
    ) -> None:
        """Serve POST /v1/chat/completions and GET /v1/models until interrupted."""
        from codemill.agent.models import make_backend
        from codemill.agent.serve import ModelServer

        with handle_errors():
            backend = make_backend(spec, home=State.settings().home)
            try:
                server = ModelServer(backend, host, port)
            except OSError as exc:
                err_console.print(f"[bold red]error:[/] cannot bind {host}:{port}: {exc}")
                raise typer.Exit(code=1) from None
            # One parseable line: scripts and tests read the URL (the port may be 0).
            print(f"serving {backend.name} at {server.url}", flush=True)
            try:
                server.serve_forever()
            finally:
                server.server_close()
