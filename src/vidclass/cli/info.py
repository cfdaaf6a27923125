"""`vidclass info`: versions, device, precision, threads, CPU features and GPUs."""

from __future__ import annotations

import json
import sys

from .. import DEFAULT_MODEL


def add(sub) -> None:
    p = sub.add_parser(
        "info",
        help="versions, device, precision and hardware: what a bug report needs",
        description="Print the versions of vidclass and what it runs on, the device and "
        "precision --device/--precision would give here, what runs --model and why (the "
        "backend rule), threads, the CPU features that matter for speed (avx2, "
        "avx512_bf16, vnni, amx) and the GPUs torch sees.",
    )
    p.add_argument("--device", default="auto", help="the device to report on (auto)")
    p.add_argument("--precision", default="auto", help="the precision to report on (auto)")
    p.add_argument("--runtime", default="auto", help="the runtime to report on (auto)")
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"the model to say what runs ({DEFAULT_MODEL})"
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help="output (table)")
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import plan
    from ..errors import VidclassError
    from ..info import system_info

    info = system_info(args.device, args.precision)
    try:
        info["runs"] = {
            "model": args.model,
            "in": plan(args.model, args.device, args.precision, args.runtime).describe(),
        }
    except VidclassError as exc:
        info["runs"] = {"model": args.model, "error": str(exc)}
    if args.format == "json":
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    cpu = info["cpu"]
    print(f"vidclass {info['vidclass']}, python {info['python']} on {info['platform']}")
    print(f"versions:  {versions}")
    print(f"device:    {info['device']}, precision {info['precision']}, threads {info['threads']}")
    if "error" in info:
        print(f"           {info['error']}")
    runs = info["runs"]
    print(f"model:     {runs['model']} runs in {runs.get('in') or runs['error']}")
    print(f"cpu:       {cpu['name']}, {cpu['cores']} cores")
    print(f"features:  {' '.join(cpu['features']) or 'none of avx2/avx512/amx'}")
    print(f"           native bf16: {'yes' if cpu['native_bf16'] else 'no'}")
    gpus = info["gpus"] or [{"device": "-", "name": "none that torch sees"}]
    for gpu in gpus:
        memory = f", {gpu['memory_gb']} GB" if "memory_gb" in gpu else ""
        print(f"gpu:       {gpu['device']} {gpu['name']}{memory}")
    return 1 if "error" in info else 0
