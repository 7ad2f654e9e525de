"""The `anpr-edge` command line. Subcommands import their heavy modules lazily so --help is quick."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent import __version__

# agent.config's and agent.recognise.consensus's (not imported here: the CLI starts without numpy)
MAX_VIEWS = 14
DEFAULT_MIN_CONFIDENCE = 0.95
# `recognise` also shows reads under the publishing threshold down to this confidence, marked not
# published: a read more than four times likelier right than wrong tells whoever points the tool at a
# photo what the unit sees there, where hiding it says "nothing". Chosen on the real-read train scenes
# (session 29; 200 photos): from 0.8, 146 of 200 plates are shown read right against 112 from 0.95, at
# 13 wrong or stray reads shown against 5; the real-detect train photos show a stray read from 0.8 on 1
# of 925. Reads under it (mostly pieces of signs, grilles and text) stay behind --all.
SHOW_FROM = 0.8

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Roadside ANPR camera unit software.")
config_app = typer.Typer(no_args_is_help=True, help="Check device configuration files.")
sim_app = typer.Typer(no_args_is_help=True, help="Camera simulator: data sets and sample frames.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print measured figures.")
app.add_typer(config_app, name="config")
app.add_typer(sim_app, name="sim")
app.add_typer(bench_app, name="bench")
hotlist_app = typer.Typer(no_args_is_help=True, help="Vehicle-of-interest lists: keys, build, show (docs/hotlists.md).")
audit_app = typer.Typer(no_args_is_help=True, help="The unit's hash-chained audit log.")
app.add_typer(hotlist_app, name="hotlist")
app.add_typer(audit_app, name="audit")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"anpr-edge {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Roadside ANPR camera unit software."""


def _load_config_or_exit(file: Path):
    from agent.config import ConfigError, load

    try:
        return load(file)
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="TOML configuration file.")]) -> None:
    """Validate a configuration file; exit 2 naming each bad field, its value and why."""
    cfg = _load_config_or_exit(file)
    typer.echo(f"{file}: OK (site {cfg.site.id}, camera {cfg.camera.id}, backend {cfg.camera.backend})")


@sim_app.command("dataset")
def sim_dataset(
    kind: Annotated[str, typer.Option(help="scenes (whole frames) or plates (plate crops).")],
    count: Annotated[int, typer.Option(min=1, help="Number of images.")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")],
    out: Annotated[Path, typer.Option(help="Output folder (images + labels.jsonl).")],
    conditions: Annotated[str | None, typer.Option(help="Comma list: day,overcast,dusk,night,rain,glare,night_rain")]
    = None,
) -> None:
    """Write a labelled data set of simulated images."""
    from sim.dataset import parse_conditions, write_dataset

    if kind not in ("scenes", "plates"):
        typer.echo(f"--kind must be 'scenes' or 'plates', not {kind!r}", err=True)
        raise typer.Exit(2)
    try:
        conds = parse_conditions(conditions)
    except ValueError as e:
        typer.echo(f"--conditions: {e}", err=True)
        raise typer.Exit(2) from None
    n = write_dataset(kind, count, seed, out, conds)
    typer.echo(f"wrote {n} {kind} images and labels.jsonl to {out}")


@sim_app.command("contact-sheet")
def sim_contact_sheet(
    out: Annotated[Path, typer.Option(help="PNG file to write (the README's picture is "
                                           "docs/img/sim-contact-sheet.png).")] = Path("sim-contact-sheet.png"),
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """A grid of day and night sample frames with their ground truth drawn on."""
    from sim.contact_sheet import make_contact_sheet

    typer.echo(f"wrote {make_contact_sheet(out, seed)}")


@bench_app.command("sim")
def bench_sim(
    frames: Annotated[int, typer.Option(help="Frames to time.")] = 500,
    crops: Annotated[int, typer.Option(help="Plate crops to time.")] = 2000,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """SimCamera frames/s at 1280x720 and plate crops/s, on one core."""
    from sim.benchmarks.simulator import bench_sim as run

    result = run(frames, crops)
    if json_out:
        typer.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="anpr-edge bench sim (one thread)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in result.items():
        t.add_row(k, f"{v:.1f}" if isinstance(v, float) else str(v))
    Console().print(t)


def _image_files(paths: list[Path]) -> list[Path]:
    from hal.camera_opencv import IMAGE_EXT

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_EXT))
        else:
            out.append(p)
    return out


@app.command("recognise")
def recognise(
    paths: Annotated[list[Path], typer.Argument(help="Images (jpg/png) and folders of images.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line per image.")] = False,
    models: Annotated[Path | None, typer.Option(help="Folder with the models (default: the shipped ones).")
                      ] = None,
    config: Annotated[Path | None, typer.Option(help="Unit configuration: its models, threshold and tiling.")
                      ] = None,
    min_confidence: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Publishing threshold (default: the configuration's, else 0.95).")] = None,
    all_reads: Annotated[bool, typer.Option("--all", help="Show every read, however unlikely, each marked "
                                                          "published true/false.")] = False,
    show_from: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Also show reads under the threshold down to this confidence, marked not "
                               "published (1: only the reads the unit would publish).")] = SHOW_FROM,
    tile: Annotated[bool, typer.Option(help="Also look at tiles of very large images (slower).")] = False,
    magnify: Annotated[bool | None, typer.Option(
        "--magnify/--no-magnify", help="Look at images up to about 800x600 twice as large (any up to "
                                       "1024x768 at least at its own size), in one finder run (default: "
                                       "the configuration's, else on).")] = None,
    threads: Annotated[int, typer.Option(min=1, max=16)] = 1,
    views: Annotated[int, typer.Option(min=1, max=MAX_VIEWS, help="Most crops of each plate read and compared.")
                     ] = MAX_VIEWS,
    crop: Annotated[bool, typer.Option("--crop", help="Each image is one plate crop (an evidence patch, a "
                                                      "labelled crop): read it as one plate.")] = False,
) -> None:
    """Read the plates in images. Shown: the reads the unit would publish (at or above the threshold)
    and, marked not published, the likely ones under it (down to --show-from); an unreadable file
    gives an error line and the command goes on; the exit status is 1 when every input failed."""
    import time

    from agent.recognise import Recogniser, RecogniserError
    from agent.recognise.image_file import read_image

    thr = DEFAULT_MIN_CONFIDENCE
    if config is not None:
        cfg = _load_config_or_exit(config)
        models = models or cfg.recogniser.models_dir
        thr = cfg.recogniser.min_confidence
        tile = tile or cfg.recogniser.tile
        magnify = cfg.recogniser.magnify if magnify is None else magnify
    magnify = True if magnify is None else magnify
    thr = thr if min_confidence is None else min_confidence
    files = _image_files(paths)
    if not files:
        typer.echo("error: no images in " + ", ".join(map(str, paths)), err=True)
        raise typer.Exit(2)
    try:
        rec = Recogniser(models, threads, views=views, tile=tile, magnify=magnify)
    except RecogniserError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    floor = min(thr, show_from)  # reads shown from here; published from thr
    failures = 0
    for f in files:
        t0 = time.perf_counter()
        img, msg = read_image(f)
        if img is None:
            failures += 1
            typer.echo(json.dumps({"file": str(f), "error": msg}) if json_out else f"{f}: error: {msg}")
            continue
        try:
            reads = rec.recognise_crop(img) if crop else rec.recognise(img)
        except ValueError as e:
            failures += 1
            typer.echo(json.dumps({"file": str(f), "error": str(e)}) if json_out else f"{f}: error: {e}")
            continue
        ms = (time.perf_counter() - t0) * 1000
        shown = [r for r in reads if all_reads or r.confidence >= floor]
        hidden = len(reads) - len(shown)
        if json_out:
            typer.echo(json.dumps({"file": str(f), "reads": [{**r.to_json(), "published": r.confidence >= thr}
                                                             for r in shown],
                                   "unpublished": len(reads) - sum(r.confidence >= thr for r in reads),
                                   "hidden": hidden, "ms": round(ms, 1)}))
        else:
            text = ", ".join(f"{r.vrm} ({r.format}, {r.confidence:.2f}"
                             + ("" if r.confidence >= thr else ", not published") + ")" for r in shown)
            text = text or "no plate read" + (f" at >= {floor}" if hidden else "")
            more = f" (+{hidden} under {floor}: --all shows them)" if hidden and not all_reads else ""
            typer.echo(f"{f}: {text}{more}  [{ms:.0f} ms]")
    if failures == len(files):
        raise typer.Exit(1)


@app.command("eval")
def eval_cmd(
    labels: Annotated[Path, typer.Argument(help="labels.jsonl (from sim dataset) or labels.csv (file,vrm).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    models: Annotated[Path | None, typer.Option(help="Folder with the models (default: the shipped ones).")
                      ] = None,
    min_confidence: Annotated[float, typer.Option(help="Publishing threshold to report precision at.")
                              ] = DEFAULT_MIN_CONFIDENCE,
    min_char_px: Annotated[float, typer.Option(help="Score only plates with characters at least this tall "
                                                    "(sim labels); 0 scores all.")] = 12.0,
    views: Annotated[int, typer.Option(min=1, max=MAX_VIEWS, help="Most crops of each plate read and compared.")
                     ] = MAX_VIEWS,
    split: Annotated[str, typer.Option(help="Real labels: the split to score (dev, train, all, or held-out: the "
                                             "tenth of real-read's train split no reader trains on).")] = "dev",
    licences: Annotated[str, typer.Option(help="Real labels: only items under these licence families, "
                                               "comma-separated (CC0,MIT,CC BY,... or 'permissive').")] = "",
    limit: Annotated[int | None, typer.Option(help="Real labels: score only the first N items.")] = None,
) -> None:
    """Detection recall, exact-read rate, within-one rate, per format and condition, confusions. Real
    photo labels (the shared set's real-read / real-detect labels.jsonl) are scored per kind, source
    and country over one split, with detection recall per plate width too."""
    from agent.recognise import Recogniser, RecogniserError
    from sim.evaluate import evaluate
    from sim.evaluate_real import evaluate_real, is_real_labels

    try:
        if labels.is_file() and is_real_labels(labels):
            res = evaluate_real(labels, Recogniser(models, 1, views=views), min_confidence,
                                split=None if split == "all" else split,
                                licences=tuple(x for x in licences.split(",") if x), limit=limit)
            _print_real(res, json_out)
            return
        res = evaluate(labels, Recogniser(models, 1, views=views), min_confidence, min_char_px=min_char_px)
    except (RecogniserError, ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(json.dumps(res))
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"anpr-edge eval {labels} ({res['images']} images, {res['plates']} plates)")
    for c in ("group", "plates", "detection recall", "exact", "within one"):
        t.add_column(c)

    def row(name: str, r: dict) -> None:
        t.add_row(name, str(r["plates"]), f"{r['detection_recall']:.2%}", f"{r['exact']:.2%}", f"{r['within_one']:.2%}")

    row("all", res)
    for k, v in res["per_format"].items():
        row(f"format {k}", v)
    for k, v in res["per_condition"].items():
        row(f"condition {k}", v)
    row("partly hidden (not in all)", res["partly_hidden"])
    con.print(t)
    c = Table(title="confidence threshold")
    for col in ("threshold", "coverage", "precision", "frames with a false read"):
        c.add_column(col)
    for r in res["calibration"]:
        c.add_row(str(r["threshold"]), f"{r['coverage']:.2%}", f"{r['precision']:.2%}",
                  f"{r['false_read_frame_rate']:.3%}")
    con.print(c)
    con.print(f"partly hidden plates read wrongly at >= {res['min_confidence']}: "
              f"{res['partly_hidden']['confident_wrong']} of {res['partly_hidden']['plates']} (in precision)")
    con.print("most confused (truth->read):", res["confused"] or "none")


def _print_real(res: dict, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(res))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"anpr-edge eval {res['labels']} (split {res['split']}, threshold {res['min_confidence']})")
    cols = ("group", "images", "plates", "detection recall", "exact (published)", "wrong at threshold",
            "junk reads / image (published)", "junk regions / image", "ms p50")
    for c in cols:
        t.add_column(c)
    for g in ("kind", "source", "country"):
        for k, r in res[g].items():
            t.add_row(k, str(r["images"]), str(r["plates"]),
                      f"{r['detection_recall']:.2%}" if "detection_recall" in r else "-",
                      f"{r['exact']:.2%} ({r['exact_published']:.2%})" if "exact" in r else "-",
                      f"{r.get('wrong_at_threshold', '?')} of {r['reads_at_threshold']}",
                      f"{r['junk_reads_per_image']:.2f} ({r['junk_published_per_image']:.2f})",
                      f"{r['junk_regions_per_image']:.2f}" if "junk_regions_per_image" in r else "-",
                      f"{r.get('ms_p50', 0):.0f}")
    for k, r in res.get("plate_width", {}).items():
        kind, band = k.split(":", 1)
        t.add_row(f"{kind} {band} px", "-", str(r["plates"]), f"{r['detection_recall']:.2%}",
                  "-", "-", "-", "-", "-")
    Console().print(t)


@bench_app.command("recognise")
def bench_recognise_cmd(
    frames: Annotated[int, typer.Option(help="Frames per case.")] = 200,
    models: Annotated[Path | None, typer.Option(help="Folder with the models (default: the shipped ones).")
                      ] = None,
    images: Annotated[Path | None, typer.Option(help="Also time every image in this folder (real photos).")
                      ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most images timed from --images.")] = 300,
    magnify: Annotated[bool, typer.Option(help="Look at --images up to about 800x600 twice as large, any "
                                               "up to 1024x768 at least at its own size (what `recognise` "
                                               "does by default).")] = True,
) -> None:
    """Per-stage times and whole-image p50/p99, one thread: simulated 1280x720 frames with one and three
    plates and, with --images, real photographs."""
    from sim.benchmarks.recognise import bench_images, bench_recognise

    result = bench_recognise(models, frames)
    if images is not None:
        files = _image_files([images])[:limit]
        if not files:
            typer.echo(f"error: no images in {images}", err=True)
            raise typer.Exit(2)
        result["images"] = bench_images(models, files, magnify)
    typer.echo(json.dumps(result, indent=2))


@app.command("verify")
def verify_cmd(
    file: Annotated[Path, typer.Argument(help="A read document (JSON).")],
    pubkey: Annotated[Path, typer.Option(help="The camera's Ed25519 public key (PEM).")],
) -> None:
    """Check a read's schema, signature and image hashes; exit 1 if it fails."""
    from agent.signing import VerifyError, load_public, verify

    try:
        key = load_public(pubkey)
        read = verify(file.read_bytes(), key)
    except (OSError, ValueError) as e:
        msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        typer.echo(f"{file}: FAILED: {msg}")
        raise typer.Exit(1 if isinstance(e, VerifyError) else 2) from None
    shed = [f for f in ("plate_patch", "overview") if getattr(read, f).jpeg_b64 == ""]
    typer.echo(f"{file}: OK: read {read.read_id} {read.vrm} at {read.captured_at.isoformat()} "
               f"signed by {read.signature.key_id if read.signature else '?'}"
               + (f" (without {' and '.join(shed)}: shed on the unit, storage full; hashes signed)" if shed else ""))


@app.command("export")
def export_cmd(
    store: Annotated[Path, typer.Argument(help="A central's --out folder (reads.sqlite and images/).")],
    read_id: Annotated[str, typer.Argument(help="The read to export.")],
    out: Annotated[Path | None, typer.Option(help="Write the document here (default: print it).")] = None,
) -> None:
    """A stored read as the camera signed it, images put back from the store: `anpr-edge verify`
    checks it, so evidence can be shown untampered."""
    from sim.central import ExportError, export_read

    try:
        data = export_read(store, read_id)
    except ExportError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if out is None:
        typer.echo(data.decode())
    else:
        out.write_bytes(data)
        typer.echo(f"wrote {out}")


@app.command("schema")
def schema_cmd(out: Annotated[Path | None, typer.Option(help="Write here instead of printing.")] = None,
               kind: Annotated[str, typer.Option(help="read (anpr.read.v1) or alert (anpr.alert.v1).")] = "read",
               ) -> None:
    """The JSON Schema of the read or alert document, generated from the model."""
    from agent.read_doc import json_schema

    if kind not in ("read", "alert"):
        typer.echo("--kind is read or alert", err=True)
        raise typer.Exit(2)
    text = json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")


@app.command("central")
def central_cmd(
    broker: Annotated[str, typer.Option(help="mqtt://host:port or mqtts://host:port")],
    out: Annotated[Path, typer.Option(help="Folder for reads.sqlite and images/.")],
    group: Annotated[str, typer.Option(help="Shared-subscription group.")] = "central",
    keys: Annotated[Path | None, typer.Option(help="Folder of registered keys ({site}.{camera}.pub), or a "
                                                   "register file ({site}.{camera} <raw key hex> a line).")] = None,
    ca: Annotated[Path | None, typer.Option(help="CA certificate for TLS.")] = None,
    cert: Annotated[Path | None, typer.Option(help="Client certificate (mTLS).")] = None,
    key: Annotated[Path | None, typer.Option(help="Client key (mTLS).")] = None,
    client_id: Annotated[str, typer.Option(help="MQTT client id; it must stay the same across restarts so "
                                               "the broker resumes the session and its queued reads "
                                               "(default: anpr-central-GROUP-INSTANCE).")] = "",
    instance: Annotated[str, typer.Option(help="This instance's name within the group (default: the host "
                                               "name); give each instance on one host its own.")] = "",
    seconds: Annotated[float, typer.Option(help="Stop after this long (0: run until Ctrl-C).")] = 0.0,
    allow_unsigned: Annotated[bool, typer.Option(help="Store reads from cameras without a registered key.")]
    = False,
    db: Annotated[str | None, typer.Option(help="postgresql://user@host:port/db (default: SQLite in --out).")]
    = None,
    session_expiry: Annotated[int, typer.Option(min=1, help="Seconds the broker keeps this instance's session "
                                                "after it goes (its share of reads waits that long for it).")]
    = 300,
) -> None:
    """Reference central subscriber: validate, verify, de-duplicate, store; prints counts as it goes."""
    import logging
    import socket
    import time

    from agent.uplink.mqtt import BrokerSettings
    from sim.central import Central, central_client_id

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    s = BrokerSettings(url=broker, client_id=client_id or central_client_id(group, instance or socket.gethostname()),
                       ca_file=ca,
                       cert_file=cert, key_file=key)
    try:
        c = Central(s, out, group, keys, require_signature=not allow_unsigned, db=db, session_expiry_s=session_expiry)
        c.start()
    except (OSError, ValueError, ConnectionError, RuntimeError) as e:
        typer.echo(f"error: cannot subscribe at {broker}: {e}", err=True)
        raise typer.Exit(2) from None
    t0 = time.monotonic()
    try:
        while not seconds or time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            k = c.counts
            typer.echo(" ".join(f"{n} {k[n]}" for n in ("received", "stored", "duplicates", "invalid",
                                                          "bad_signature", "wrong_key", "unknown_camera")))
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


@bench_app.command("fleet")
def bench_fleet_cmd(
    cameras: Annotated[int, typer.Option(min=1, help="Simulated cameras, each its own MQTT client.")] = 1000,
    rate: Annotated[float, typer.Option(min=0.0001, help="Reads per second per camera (Poisson).")] = 0.1,
    seconds: Annotated[float, typer.Option(min=1, help="How long the fleet publishes.")] = 120.0,
    centrals: Annotated[int, typer.Option(min=1, help="Central instances sharing the subscription.")] = 1,
    kill_one: Annotated[bool, typer.Option(help="SIGKILL one central half way.")] = False,
    churn: Annotated[float, typer.Option(min=0, max=1, help="Share of cameras that drop and rejoin.")] = 0.05,
    processes: Annotated[int, typer.Option(min=1, help="Fleet worker processes.")] = 2,
    db: Annotated[str | None, typer.Option(help="postgresql://... for the centrals, or 'local' for a throw-away "
                                                "server (default: SQLite).")] = None,
    out: Annotated[Path, typer.Option(help="Working folder.")] = Path("bench-fleet-out"),
) -> None:
    """Mosquitto, K centrals and N simulated cameras: one JSON line of sent, stored, lost, duplicates,
    sustained reads/s, publish-to-stored p50/p99, broker and central CPU and RSS."""
    from sim.benchmarks.fleet import bench_fleet

    typer.echo(json.dumps(bench_fleet(cameras, rate, seconds, centrals, kill_one, churn, processes, db, out)))


@sim_app.command("fleet")
def sim_fleet_cmd(
    broker: Annotated[str, typer.Option(help="mqtt://host:port of the broker.")],
    cameras: Annotated[int, typer.Option(min=1)] = 100,
    rate: Annotated[float, typer.Option(min=0.0001, help="Reads per second per camera (Poisson).")] = 0.1,
    seconds: Annotated[float, typer.Option(min=1)] = 60.0,
    churn: Annotated[float, typer.Option(min=0, max=1, help="Share of cameras that drop and rejoin.")] = 0.05,
    processes: Annotated[int, typer.Option(min=1)] = 2,
    out: Annotated[Path, typer.Option(help="Key register (keys.txt, for `central --keys`) and sent ids.")] = Path(
        "fleet-out"),
) -> None:
    """Simulated cameras publishing signed reads with real-size images to a broker."""
    from sim.fleet import FleetSettings, run_fleet

    typer.echo(json.dumps(run_fleet(FleetSettings(broker=broker, cameras=cameras, rate=rate, seconds=seconds,
                                                  churn=churn, processes=processes, out=out))))


@bench_app.command("uplink")
def bench_uplink_cmd(reads: Annotated[int, typer.Option(help="Backlog size.")] = 2000) -> None:
    """Backlog drain rate with full-size images, PUBACK latency, central ingest with 1 and 2 subscribers."""
    from sim.benchmarks.uplink import bench_uplink

    typer.echo(json.dumps(bench_uplink(reads), indent=2))


@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Option("--config", help="Device configuration (TOML).")] = Path(
        "/etc/anpr-edge/config.toml"),
) -> None:
    """Run the unit: camera, recogniser, outbox, uplink (as the systemd service does)."""
    from agent.config import ConfigError, load
    from agent.hotlist import HotlistError
    from agent.recognise.runtime import ModelError
    from agent.service import run
    from hal.errors import HalError

    try:
        cfg = load(config)
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    try:
        code = run(cfg, config)
    except HotlistError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except (HalError, ModelError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command("provision")
def provision_cmd(
    site: Annotated[str, typer.Option(help="Site identifier.")],
    camera: Annotated[str, typer.Option(help="Camera identifier.")],
    broker: Annotated[str, typer.Option(help="mqtts://host:port of the central broker.")],
    ca: Annotated[Path, typer.Option(help="CA certificate that signed the broker's certificate.")],
    cert: Annotated[Path | None, typer.Option(help="This unit's certificate, once the CA has signed the CSR.")]
    = None,
    config_dir: Annotated[Path, typer.Option(help="Where config.toml, TLS key and CSR go.")] = Path("/etc/anpr-edge"),
    state_dir: Annotated[Path, typer.Option(help="State directory (outbox, signing key).")] = Path(
        "/var/lib/anpr-edge"),
    models_dir: Annotated[Path, typer.Option()] = Path("/opt/anpr-edge/models"),
    backend: Annotated[str, typer.Option(help="Camera backend: picamera2, opencv or sim.")] = "picamera2",
    username: Annotated[str | None, typer.Option()] = None,
    password_file: Annotated[Path | None, typer.Option()] = None,
    force: Annotated[bool, typer.Option(help="Replace existing keys and configuration.")] = False,
    systemd: Annotated[bool | None, typer.Option("--systemd/--no-systemd",
                                                 help="Install and enable the unit (default: when root).")] = None,
) -> None:
    """Write the configuration, create keys and a CSR, print the key fingerprint; idempotent."""
    from agent.provision import acl_block, provision

    if backend not in ("picamera2", "opencv", "sim"):
        typer.echo(f"--backend must be picamera2, opencv or sim, not {backend!r}", err=True)
        raise typer.Exit(2)
    try:
        r = provision(site, camera, broker, ca, config_dir=config_dir, state_dir=state_dir, models_dir=models_dir,
                      backend=backend, cert=cert, username=username, password_file=password_file, force=force,
                      systemd=systemd)
    except (OSError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"configuration: {r.config}")
    typer.echo(f"signing key:   {r.signing_key} (public: {r.signing_pub})")
    typer.echo(f"TLS key, CSR:  {r.tls_key}, {r.csr}  -> have the CA sign the CSR, then run again with --cert")
    typer.echo(f"register at central: {site}.{camera}.pub  key_id {r.key_id}  sha256 {r.fingerprint}")
    typer.echo("broker ACL block:\n" + acl_block(site, camera))
    typer.echo("changed: " + (", ".join(r.created) if r.created else "nothing (already provisioned)"))
    if r.unit_installed:
        typer.echo("systemd unit installed and enabled: anpr-edge.service")


@app.command("calibrate")
def calibrate_cmd(
    config: Annotated[Path | None, typer.Option("--config", help="Device configuration (TOML).")] = None,
    frames: Annotated[int, typer.Option(min=25, help="Frames to watch.")] = 750,
    source: Annotated[str, typer.Option(help="sim, camera (the configured backend) or video.")] = "sim",
    video: Annotated[Path | None, typer.Argument(help="Recorded video or folder, with --source video.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.html and report.json.")] = Path("commissioning"),
    write_config: Annotated[bool, typer.Option(help="Write the suggested capture region and lanes into the config.")]
    = False,
    models: Annotated[Path | None, typer.Option(help="Models folder (default: from the config).")] = None,
) -> None:
    """Watch traffic and check focus, plate size, angle, shutter, IR, framing and read rate; write a report."""
    from agent.config import ConfigError, from_mapping, load
    from calibration.run import calibrate

    if source not in ("sim", "camera", "video"):
        typer.echo(f"--source must be sim, camera or video, not {source!r}", err=True)
        raise typer.Exit(2)
    try:
        cfg = load(config) if config else from_mapping({"site": {"id": "SIM"}, "camera": {"id": "cam1"}})
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    try:
        res = calibrate(cfg, out, frames, source, video, models=models)
    except (ValueError, OSError, RuntimeError) as e:  # a bad input (not a video, no camera): not a failed check
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for c in res["checks"]:
        typer.echo(f"{c['status'].upper():5} {c['name']:17} {c['value']}  -> {c['advice']}")
    typer.echo(f"overall {res['overall'].upper()}; report: {out / 'report.html'}")
    if write_config:
        if config is None:
            typer.echo("--write-config needs --config", err=True)
            raise typer.Exit(2)
        from calibration.write_config import write_geometry

        write_geometry(config, res["suggested"])
        typer.echo(f"wrote the suggested capture region and {len(res['suggested']['lanes'])} lanes into {config}")
    raise typer.Exit(1 if res["overall"] == "fail" else 0)


@bench_app.command("pipeline")
def bench_pipeline_cmd(
    models: Annotated[Path | None, typer.Option(help="Folder with the models (default: the shipped ones).")
                      ] = None,
    latency_frames: Annotated[int, typer.Option(help="Frames at 25 fps for the latency run.")] = 750,
    memory_frames: Annotated[int, typer.Option(help="Frames for the throughput and memory run.")] = 10_000,
) -> None:
    """Frames/s per core, capture-to-PUBACK latency at 25 fps, CPU per frame, RSS at 1k and 10k frames."""
    from sim.benchmarks.pipeline import bench_pipeline

    typer.echo(json.dumps(bench_pipeline(models, latency_frames, memory_frames), indent=2))


@app.command("demo")
def demo(
    vehicles: Annotated[int, typer.Option(help="Stop after this many vehicles have passed (0: until Ctrl-C).")] = 0,
    headless: Annotated[bool, typer.Option(help="No live view, as fast as the CPU allows; JSON summary.")] = False,
    broker: Annotated[str | None, typer.Option(help="Use this broker instead of a local Mosquitto.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the gallery and summary.")] = Path("demo-out"),
    seed: Annotated[int, typer.Option()] = 1,
    models: Annotated[Path | None, typer.Option(help="Folder with the models (default: the shipped ones).")
                      ] = None,
    hotlist_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Put this share of the simulated vehicles "
                                                 "on a generated, signed hotlist; alerts are counted.")] = 0.0,
) -> None:
    """Simulated camera, traffic from day to night, the real pipeline, a broker and the central subscriber."""
    from agent.recognise.runtime import ModelError
    from hal.errors import HalError
    from sim.demo import run_demo

    if headless and not vehicles:
        vehicles = 60
    try:
        summary = run_demo(out=out, vehicles=vehicles or None, seed=seed, broker_url=broker,
                           live=sys.stdout.isatty(), headless=headless, models=models,
                           hotlist_share=hotlist_share)
    except (ModelError, HalError, RuntimeError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(summary, indent=None if headless else 2))
    if not headless:
        typer.echo(f"gallery: {out / 'index.html'}")


@hotlist_app.command("keygen")
def hotlist_keygen(out: Annotated[Path, typer.Option(help="Folder for the four key files.")]) -> None:
    """Make a deployment's keys: the secret and signing key stay central; the match key and the public
    key go to every unit (hotlist.match_key_file, hotlist.trust_key_file)."""
    from agent.hotlist import HotlistError, keygen

    try:
        paths = keygen(out)
    except (HotlistError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for k, p in paths.items():
        where = "central only" if k in ("secret", "signing") else "copy to every unit"
        typer.echo(f"{p}  ({where})")


@hotlist_app.command("build")
def hotlist_build(
    csv_file: Annotated[Path, typer.Argument(help="CSV: vrm,list,reason,priority[,action,added,reviewed,expires].")],
    key: Annotated[Path, typer.Option(help="The deployment secret (hotlist-secret.key).")],
    sign: Annotated[Path, typer.Option(help="The central's Ed25519 signing key (hotlist-signing.pem).")],
    out: Annotated[Path, typer.Option(help="Write the signed full list here.")],
    version: Annotated[int | None, typer.Option(help="List version (default: Unix seconds now).")] = None,
    delta_from: Annotated[Path | None, typer.Option(help="The full list units hold now: also write a delta.")] = None,
    delta_out: Annotated[Path | None, typer.Option(help="Where the delta goes (default: OUT with .delta).")] = None,
) -> None:
    """Hash, seal and sign a list for units; VRMs never appear in clear in the output."""
    import time as _time

    from agent.hotlist import HotlistError, build, entries_from_csv, parse_update, read_key_file
    from agent.signing import load_private

    try:
        secret = read_key_file(key)
        signer = load_private(sign)
        entries = entries_from_csv(csv_file.read_text(encoding="utf-8"), secret)
        base = parse_update(delta_from.read_bytes(), None) if delta_from else None
        full, delta = build(entries, secret, signer, version or int(_time.time()), base)
    except (HotlistError, OSError, ValueError, UnicodeDecodeError) as e:
        typer.echo(f"error: {getattr(e, 'strerror', None) or e}", err=True)
        raise typer.Exit(2) from None
    out.write_bytes(full)
    typer.echo(f"wrote {out}: {len(entries)} entries, {len(full)} bytes")
    if delta is not None:
        d = delta_out or out.with_suffix(out.suffix + ".delta")
        d.write_bytes(delta)
        typer.echo(f"wrote {d}: delta from version {base.version}, {len(delta)} bytes")


@hotlist_app.command("show")
def hotlist_show(
    file: Annotated[Path, typer.Argument(help="A list or delta file.")],
    trust: Annotated[Path | None, typer.Option(help="Check its signature against this public key.")] = None,
    reveal: Annotated[bool, typer.Option(help="Print every entry with its VRM (needs --key).")] = False,
    key: Annotated[Path | None, typer.Option(help="The deployment secret, for --reveal.")] = None,
) -> None:
    """Counts, version, expiries; never a VRM unless --reveal with the deployment secret."""
    import dataclasses

    from agent.hotlist import HotlistError, parse_update, read_key_file, summarise, unseal
    from agent.signing import load_public

    try:
        upd = parse_update(file.read_bytes(), load_public(trust) if trust else None)
        secret = read_key_file(key) if reveal and key else None
    except (HotlistError, OSError, ValueError) as e:
        typer.echo(f"{file}: refused: {getattr(e, 'strerror', None) or e}", err=True)
        raise typer.Exit(1) from None
    if reveal and secret is None:
        typer.echo("--reveal needs --key (the deployment secret)", err=True)
        raise typer.Exit(2)
    doc = dataclasses.asdict(summarise(upd))
    doc["signature"] = "verified" if trust else "not checked (give --trust)"
    typer.echo(json.dumps(doc, indent=2))
    if secret is not None:
        try:
            for e in upd.entries:
                typer.echo(f"{unseal(e, secret):<10} {e.list:<16} {e.reason:<10} p{e.priority} expires "
                           f"{e.expires:%Y-%m-%d} {e.action}")
        except HotlistError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None


@audit_app.command("verify")
def audit_verify(
    paths: Annotated[list[Path], typer.Argument(help="The audit folder, or its files oldest first.")],
    head: Annotated[Path | None, typer.Option(help="The audit.head file (found in a folder by itself).")] = None,
) -> None:
    """Check the hash chain: exit 1 naming each edited, inserted or removed line."""
    from agent.audit import AuditLog, verify_files

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += AuditLog.files_in(p)
            head = head or (p / "audit.head")
        else:
            files.append(p)
    if not files:
        typer.echo("no audit files given", err=True)
        raise typer.Exit(2)
    try:
        res = verify_files(files, head)
    except OSError as e:
        typer.echo(f"error: {e.strerror or e}", err=True)
        raise typer.Exit(2) from None
    for p in res.problems:
        typer.echo(p)
    typer.echo(f"{'OK' if res.ok else 'FAILED'}: {res.lines} lines, seq {res.first_seq}..{res.last_seq}"
               + (f", {len(res.problems)} problem(s)" if res.problems else ""))
    raise typer.Exit(0 if res.ok else 1)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
