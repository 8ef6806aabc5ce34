#!/usr/bin/env python
"""Peak memory of lora K = 4 with ``sequential_experts`` against lora K = 1, on SmolLM2-135M, 4 pairs x 128
tokens, cached references, each case in its own process (``mixdpo bench speed``'s measurement: peak RSS,
read before the FLOP-counting step). Writes docs/benchmarks/sequential-memory.json.

    python scripts/measure_sequential_memory.py
"""

import json
from pathlib import Path

from mixdpo.bench.speed import run_case_subprocess
from mixdpo.bench.speed_cases import SpeedCase, SpeedSettings

settings = SpeedSettings(model="builtin:smollm2-135m", batch=4, length=128, steps=1, warmup=1)
rows = []
for case in (SpeedCase("mixdpo", "lora", 1, True), SpeedCase("mixdpo", "lora", 4, True, sequential=True)):
    row = run_case_subprocess(case, settings).to_dict()
    rows.append(row)
    print(f"{case.name}: {row['peak_mb']:.0f} MiB, {row['step_s']:.1f} s/step", flush=True)
print(f"K=4 sequential / K=1 peak memory: {rows[1]['peak_mb'] / rows[0]['peak_mb']:.2f}x")
out = Path("docs/benchmarks/sequential-memory.json")
out.write_text(json.dumps({"settings": settings.to_dict(), "rows": rows}, indent=2) + "\n")
