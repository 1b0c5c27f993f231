"""`python -m engine_service.entrypoints.cli`: the same as the `enginectl` console script."""

from engine_service.entrypoints.cli import main

if __name__ == "__main__":
    main(prog_name="enginectl")
