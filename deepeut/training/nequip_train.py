"""``nequip-train`` with Allegro's contraction as a batched matrix product (deepeut.training.contract).

Same command line as ``python -m nequip.scripts.train``; the trained weights, checkpoints and packaged models are
nequip's own (the packaged model carries Allegro's unmodified source)."""

from deepeut.training.contract import patch_allegro


def main() -> None:
    patch_allegro()
    from nequip.scripts.train import main as nequip_main

    nequip_main()


if __name__ == "__main__":
    main()
