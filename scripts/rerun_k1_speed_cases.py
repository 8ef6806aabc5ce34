#!/usr/bin/env python
"""Re-measure the K=1 cases (TRL full and LoRA, mixdpo lora and independent) of a speed run back to back,
and rebuild its report and the BENCHMARKS.md section; the first values stay in the JSON
(``first_measurement``). For when the first measurements overlapped another job on a shared machine.

    python scripts/rerun_k1_speed_cases.py          # cached-reference cases
    python scripts/rerun_k1_speed_cases.py --live   # and the live-reference ones
    # after: mixdpo bench speed --tier full --update-benchmarks
"""

import json
import sys
from pathlib import Path

from mixdpo.bench.speed import run_case_subprocess
from mixdpo.bench.speed_cases import SpeedCase, SpeedSettings
from mixdpo.bench.speed_report import update_section
from mixdpo.bench.speed_suite import report_markdown

out = Path("bench/speed-full")
doc = json.loads((out / "speed.json").read_text())
settings = SpeedSettings(**doc["settings"])
for i, row in enumerate(doc["rows"]):
    case = SpeedCase(**row["case"])
    k1_pair = case.library == "trl" or (case.experts == 1 and case.method in ("lora", "independent"))
    wanted = case.cached_reference or "--live" in sys.argv[1:]
    if k1_pair and wanted and not case.checkpointing and not case.sequential and case.batch is None:
        print("re-measuring", case.name, flush=True)
        new = run_case_subprocess(case, settings).to_dict()
        new["first_measurement"] = {
            "step_s": row["step_s"],
            "peak_mb": row["peak_mb"],
            "step_times": row["step_times"],
        }
        doc["rows"][i] = new
        print("  was", round(row["step_s"], 2), "now", new["step_s"] and round(new["step_s"], 2), flush=True)
which = "cached- and live-reference" if "--live" in sys.argv[1:] else "cached-reference"
doc["remeasured"] = (
    f"the K=1 {which} cases of TRL and mixdpo (lora, independent) were re-run back to back after the "
    "tier: the first measurements overlapped other jobs on the machine"
)
(out / "speed.json").write_text(json.dumps(doc, indent=2))
(out / "speed.md").write_text(report_markdown(doc))
update_section(Path("BENCHMARKS.md"), report_markdown(doc))
