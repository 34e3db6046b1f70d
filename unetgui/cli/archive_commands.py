"""``unetgui archive echo|find|get|send|cache``: an archive (PACS, Orthanc, dcm4chee) from the command line, through
tasks/archive.py as the app's File > Open from archive does; ``cache`` lists or clears the series retrieved so far.

The node is a saved one (``--node NAME``, the app's list in archive_nodes.json under the data folder) or given here:
``--host --port --called-aet`` (DIMSE) or ``--url`` (DICOMweb). A DICOMweb password comes from the environment
variable ``UNETGUI_ARCHIVE_PASSWORD``, never from an argument (arguments are visible to other users of the machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from dataclasses import asdict, replace

from unetgui.cli.common import command, show, warn
from unetgui.cli.outputs import check_writable, write_json
from unetgui.cli.progress import ProgressLine
from unetgui.core.errors import UnetguiError
from unetgui.core.textsafe import printable
from unetgui.net.nodes import DEFAULT_AET, ORIGIN_FILE, Node, find_node

PASSWORD_VARIABLE = "UNETGUI_ARCHIVE_PASSWORD"
NODE_EXAMPLES = {
    "dimse": "--host pacs.example.org --port 104 --called-aet PACS",
    "web": "--url http://localhost:8042/dicom-web",
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    archive = command(sub, "archive", "query, retrieve from and send to an archive (PACS, Orthanc, dcm4chee) over DICOM "
                      "(C-FIND, C-GET, C-MOVE, C-STORE) or DICOMweb (QIDO-RS, WADO-RS, STOW-RS)", [
                          f"unetgui archive echo {NODE_EXAMPLES['dimse']}",
                          "unetgui archive find --node PACS --patient-id 12345 --study-date 20240101-",
                          "unetgui archive get --node PACS --series 1.2.840.113619.2.55.3 --output ct/",
                          "unetgui archive send --node PACS export/liver_seg.dcm",
                          "unetgui archive cache --clear"],
                      description="Query, retrieve from and send to an archive. The node is a saved one (--node NAME) "
                      "or given with --host/--port/--called-aet (DIMSE) or --url (DICOMweb); a DICOMweb password is "
                      f"read from the environment variable {PASSWORD_VARIABLE}. Retrieved series are kept in the cache "
                      "(archive_cache in the data folder, see docs/archive.md); unetgui archive cache lists and clears "
                      "it.")
    actions = archive.add_subparsers(dest="action", required=True, metavar="ACTION",
                                     help="echo (is it there?), find (query), get (retrieve a series), send (store "
                                     "files), cache (list or clear the retrieved series)")

    echo = command(actions, "echo", "check that the archive answers (C-ECHO, or a QIDO-RS search for one study)", [
        f"unetgui archive echo {NODE_EXAMPLES['dimse']}",
        f"unetgui archive echo {NODE_EXAMPLES['web']}",
        "unetgui archive echo --node PACS"])
    _add_node(echo)
    echo.set_defaults(run=_echo)

    find = command(actions, "find", "find series by patient, study date, modality, accession or study description; "
                   "one line per series", [
                       "unetgui archive find --node PACS --patient-id 12345",
                       "unetgui archive find --node PACS --patient-name 'DOE^J*' --study-date 20240101-20241231 "
                       "--modality CT",
                       f"unetgui archive find {NODE_EXAMPLES['web']} --accession A123 --json series.json"])
    _add_node(find)
    find.add_argument("--patient-id", default="", help="the PatientID (DICOM wildcards * and ? allowed)")
    find.add_argument("--patient-name", default="", help="the PatientName, e.g. 'DOE^JOHN' or 'DOE*' (wildcards allowed)")
    find.add_argument("--study-date", default="", help="YYYYMMDD, a range YYYYMMDD-YYYYMMDD, -YYYYMMDD (up to) or "
                      "YYYYMMDD- (from)")
    find.add_argument("--modality", default="", help="the modality of the series, e.g. CT, MR, SEG")
    find.add_argument("--accession", default="", help="the AccessionNumber")
    find.add_argument("--study-description", default="", help="the StudyDescription (wildcards allowed, e.g. '*liver*')")
    find.add_argument("--json", help="also write every series' DICOM attributes (under their keywords) to this JSON file")
    find.set_defaults(run=_find)

    get = command(actions, "get", "retrieve one series (whole or not at all) into a folder, through the cache", [
        "unetgui archive get --node PACS --series 1.2.840.113619.2.55.3 --output ct/",
        "unetgui archive get --node PACS --study 1.2.840.113619.2.55 --series 1.2.840.113619.2.55.3 --output ct/ "
        "--via move",
        f"unetgui archive get {NODE_EXAMPLES['web']} --series 1.2.840.113619.2.55.3 --output ct/ --overwrite"])
    _add_node(get)
    get.add_argument("--series", required=True, help="the SeriesInstanceUID (unetgui archive find lists them)")
    get.add_argument("--study", default="", help="its StudyInstanceUID (asked of the archive when not given)")
    get.add_argument("--output", required=True, help="the folder to write the series' files into (created; an "
                     "existing non-empty folder only with --overwrite)")
    get.add_argument("--via", default="auto", choices=["auto", "get", "move", "wado"],
                     help="C-GET, C-MOVE (to --move-port) or WADO-RS; auto: WADO-RS for DICOMweb, else C-GET")
    get.add_argument("--overwrite", action="store_true", help="replace the files of an existing non-empty --output")
    get.set_defaults(run=_get)

    send = command(actions, "send", "store DICOM files (a DICOM-SEG, a series) on the archive: C-STORE or STOW-RS", [
        "unetgui archive send --node PACS export/liver_seg.dcm",
        f"unetgui archive send {NODE_EXAMPLES['dimse']} export/",
        f"unetgui archive send {NODE_EXAMPLES['web']} --username me export/liver_seg.dcm"])
    _add_node(send)
    send.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER",
                      help="DICOM files, or folders searched for them (other files there are skipped)")
    send.set_defaults(run=_send)

    cache = command(actions, "cache", "list the series retrieved into this computer's archive cache, or remove them "
                    "(--clear)", [
                        "unetgui archive cache",
                        "unetgui archive cache --clear",
                        "unetgui archive cache --clear --series 1.2.840.113619.2.55.3 1.2.840.113619.2.55.4"],
                    description="List the series retrieved into the archive cache (archive_cache in the data folder; "
                    "they hold patient data, unencrypted), least recently used first, or remove them. After each "
                    "retrieve the cache is kept under its size cap (the environment variable "
                    f"{_cap_help()}), least recently used series first, never one of a project in the data folder.")
    cache.add_argument("--clear", action="store_true", help="remove the cached series from this computer (all, or "
                       "those --series names; a series being retrieved now is left alone)")
    cache.add_argument("--series", nargs="+", action="extend", metavar="UID",
                       help="with --clear: only these SeriesInstanceUIDs (this command lists them)")
    cache.set_defaults(run=_cache, parser=cache)


def _add_node(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the archive (a saved node, or given here)")
    group.add_argument("--node", help="a saved archive node by name (the app's archive settings)")
    group.add_argument("--host", help="DIMSE: the archive's host name or address")
    group.add_argument("--port", type=int, help="DIMSE: the archive's DICOM port (often 104 or 11112; Orthanc 4242)")
    group.add_argument("--called-aet", help="DIMSE: the archive's AE title")
    group.add_argument("--calling-aet", help=f"DIMSE: our AE title (default {DEFAULT_AET}; with --node it replaces "
                       "the saved one)")
    group.add_argument("--move-port", type=int, help="DIMSE: the port on this machine C-MOVE sends to (the archive must "
                       "know our AE title with this host and port)")
    group.add_argument("--tls", action="store_true", help="DIMSE: use TLS (the system's certificate authorities)")
    group.add_argument("--url", help="DICOMweb: the archive's DICOMweb root, e.g. http://host:8042/dicom-web")
    group.add_argument("--username", help=f"DICOMweb: the user for HTTP basic authentication (the password from the "
                       f"environment variable {PASSWORD_VARIABLE})")
    group.add_argument("--timeout", type=float, help="seconds to wait for an answer (default 30)")
    parser.set_defaults(parser=parser)


def _node(args: argparse.Namespace) -> tuple[Node, str]:
    """The node the arguments name, and its password (from the environment, for a DICOMweb user)."""
    address = [f for f in ("host", "port", "called_aet", "url", "username", "tls") if getattr(args, f)]
    overrides = {k: v for k, v in (("calling_aet", args.calling_aet), ("move_port", args.move_port),
                                   ("timeout_s", args.timeout)) if v is not None}
    if args.node:
        if address:
            args.parser.error(f"give --node or the archive's address, not both (--{address[0].replace('_', '-')})")
        node = find_node(args.node)
    elif args.url:
        if args.host or args.port or args.called_aet or args.tls:
            args.parser.error("give --url (DICOMweb) or --host/--port/--called-aet (DIMSE), not both")
        node = Node("archive", url=args.url, username=args.username or "")
    elif args.host or args.port or args.called_aet:
        missing = [f"--{f.replace('_', '-')}" for f in ("host", "port", "called_aet") if not getattr(args, f)]
        if missing:
            args.parser.error(f"a DIMSE archive needs --host, --port and --called-aet ({', '.join(missing)} missing)")
        if args.username:
            args.parser.error("--username is for a DICOMweb archive (--url)")
        node = Node("archive", host=args.host, port=args.port, called_aet=args.called_aet, tls=args.tls)
    else:
        args.parser.error("give the archive: --node NAME, or --host, --port and --called-aet, or --url")
    node = replace(node, **overrides) if overrides else node
    password = ""
    if node.dicomweb and node.username:
        password = os.environ.get(PASSWORD_VARIABLE, "")
        if not password:
            raise UnetguiError(f"{node.describe()}: set the environment variable {PASSWORD_VARIABLE} to the password "
                               f"of {node.username!r}")
    return node, password


def _echo(args: argparse.Namespace) -> int:
    from unetgui.tasks import archive

    node, password = _node(args)
    seconds = archive.echo(node, password)
    show(f"{node.describe()}: answered in {seconds * 1000:.0f} ms")
    return 0


HEADER = (f"{'date':<8}  {'patient ID':<16}  {'patient name':<20}  {'mod':<4} {'no.':>4} {'images':>6}  "
          f"{'study / series description':<36}  series UID")


def _cell(text: str, width: int) -> str:
    text = printable(text, width)
    return text if len(text) <= width else text[:width - 1] + "~"


def _line(hit) -> str:
    description = " / ".join(d for d in (hit.study_description, hit.series_description) if d)
    images = "?" if hit.instances is None else str(hit.instances)
    return (f"{_cell(hit.study_date, 8):<8}  {_cell(hit.patient_id, 16):<16}  {_cell(hit.patient_name, 20):<20}  "
            f"{_cell(hit.modality, 4):<4} {_cell(hit.series_number, 4):>4} {images:>6}  {_cell(description, 36):<36}  "
            f"{printable(hit.series_uid, 64)}")


def _find(args: argparse.Namespace) -> int:
    from unetgui.tasks import archive

    if args.json:
        check_writable(args.json, "--json")
    query = archive.Query(args.patient_id, args.patient_name, args.study_date, args.modality, args.accession,
                          args.study_description)
    node, password = _node(args)
    hits = archive.find(node, query, password)
    studies = len({hit.study_uid for hit in hits})
    if hits:
        print(HEADER)
        for hit in hits:
            show(_line(hit))
    show(f"{len(hits)} series in {studies} stud{'y' if studies == 1 else 'ies'} on {node.describe()}")
    if args.json:
        write_json(args.json, {"node": node.describe(), "query": asdict(query),
                               "series": [{**hit.attributes, "StudyInstanceUID": hit.study_uid,
                                           "SeriesInstanceUID": hit.series_uid} for hit in hits]})
    return 0


def _check_output(path: str, overwrite: bool) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise UnetguiError(f"--output {path}: a file, not a folder")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise UnetguiError(f"--output {path}: the folder is not empty; give --overwrite to replace its files")
    others = [n for n in os.listdir(path) if not n.lower().endswith(".dcm")] if os.path.isdir(path) else []
    if others:  # --overwrite replaces the folder: only an earlier retrieve's files may go with it
        raise UnetguiError(f"--output {path}: holds files other than DICOM (.dcm), e.g. {others[0][:60]!r}: --overwrite "
                           "replaces only a folder of an earlier retrieve; choose another folder")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UnetguiError(f"--output {path}: its folder does not exist or is not writable")


def _copy_whole(source: str, output: str) -> int:
    """The DICOM files of ``source`` (not the cache's record of where they came from) into ``output``, whole or not
    at all: copied beside it, then swapped in."""
    output = os.path.abspath(output)
    staging = tempfile.mkdtemp(prefix=".partial-", dir=os.path.dirname(output))
    old = None
    try:
        names = sorted(n for n in os.listdir(source) if n != ORIGIN_FILE)
        for name in names:
            shutil.copy2(os.path.join(source, name), os.path.join(staging, name))
        if os.path.isdir(output):
            old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(output))
            os.rename(output, os.path.join(old, "x"))
        os.rename(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not os.path.exists(output) and os.path.isdir(os.path.join(old, "x")):
            os.rename(os.path.join(old, "x"), output)  # put the old folder back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return len(names)


def _get(args: argparse.Namespace) -> int:
    from unetgui.tasks import archive, archive_cache

    _check_output(args.output, args.overwrite)
    node, password = _node(args)
    cached = archive_cache.cached_series(args.series) is not None
    folder = archive.retrieve(node, args.study, args.series, args.via, password, progress=ProgressLine("retrieving"))
    count = _copy_whole(folder, args.output)
    show(f"wrote {count} file(s) to {args.output} ({'from the cache' if cached else 'retrieved from ' + node.describe()})")
    return 0


def _send(args: argparse.Namespace) -> int:
    from unetgui.tasks import archive

    node, password = _node(args)
    stored = archive.send(node, args.paths, password, progress=ProgressLine("sending"))
    show(f"stored {stored} file(s) on {node.describe()}")
    return 0


def _cap_help() -> str:
    from unetgui.tasks.archive_cache import CACHE_CAP_VARIABLE, DEFAULT_CACHE_GB

    return f"{CACHE_CAP_VARIABLE}, in GB; default {DEFAULT_CACHE_GB:g}"


CACHE_HEADER = f"{'last used':<16}  {'files':>5}  {'size':>8}  {'node':<16}  {'projects':>8}  series UID"


def _cache_line(entry) -> str:
    import datetime

    from unetgui.tasks.archive_cache import size_text

    used = datetime.datetime.fromtimestamp(entry.last_used).strftime("%Y-%m-%d %H:%M")
    uid = entry.series_uid or f"? (folder {os.path.basename(entry.folder)})"
    return (f"{used:<16}  {entry.files:>5}  {size_text(entry.bytes):>8}  {_cell(entry.node or '?', 16):<16}  "
            f"{len(entry.projects) or '-':>8}  {printable(uid, 80)}")


def _cache(args: argparse.Namespace) -> int:
    from unetgui.tasks import archive_cache

    if args.series and not args.clear:
        args.parser.error("--series names the series to remove: give it with --clear")
    if args.clear:
        removed = archive_cache.clear_cache(args.series)
        show(f"removed {len(removed)} series ({archive_cache.size_text(sum(e.bytes for e in removed))}) from "
             f"{archive_cache.cache_folder()}")
        used = [e for e in removed if e.projects]
        if used:
            warn([f"{len(used)} of them held the image of a project in the data folder: its labels stay, and it opens "
                  "again once the series is retrieved again"])
        return 0
    entries = archive_cache.cache_entries()
    usage = archive_cache.cache_usage(entries)
    if entries:
        print(CACHE_HEADER)
        for entry in entries:
            show(_cache_line(entry))
    size, cap = archive_cache.size_text(usage.bytes), archive_cache.size_text(usage.cap)
    show(f"{usage.series} series, {size} of the {cap} cap in {archive_cache.cache_folder()}")
    return 0
