"""What ships must not drift from the code (DESIGN §4, issue 11): every
command and flag of `hookq --help` / `hookq COMMAND --help` is in hookq(1);
every key of the key table of src/lib/config.c is in hookq.ini(5), in
docs/configuration.md and in the shipped /etc/hookq/hookq.ini, each under
its own section; that file is valid as shipped; the systemd units pass
`systemd-analyze verify`; the package's version is the project's."""
import os
import re
import shutil
import subprocess
import tempfile

from harness import HOOKQ, Suite

suite = Suite("shipping")
SRC = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("HQ_BUILD_DIR", "")


def read(*path):
    with open(os.path.join(SRC, *path)) as f:
        return f.read()


def config_keys():
    """{section: [key, ...]} from the key tables of config.c: keys[] ("" =
    top level) and event_keys[] (section "event")."""
    src = read("src", "lib", "config.c")
    keys = {}
    for name in ("keys", "event_keys"):
        table = src[src.index("static const struct keydef %s[] = {" % name):]
        table = table[:table.index("\n};")]
        for section, key in re.findall(r'\{"([a-z_]*)",\s*"([a-z_]+)",\s*K_', table):
            keys.setdefault(section, []).append(key)
    assert len(keys) >= 7 and "redis" in keys and "worker" in keys, keys
    assert "deliver" in keys["event"] and "fetch" in keys["event"], keys
    return keys


def split_sections(text, heading):
    """{section name: its text} for a document whose section headings match
    `heading` (a regex with one group: the section's name)."""
    out, name, buf = {}, None, []
    for line in text.splitlines():
        m = re.match(heading, line)
        if m:
            if name is not None:
                out[name] = "\n".join(buf)
            name, buf = m.group(1), []
        elif name is not None:
            buf.append(line)
    if name is not None:
        out[name] = "\n".join(buf)
    return out


def by_config_section(sections):
    """Keep the sections named after a config section: "[redis]" or
    "`[redis]`" is redis, "[event CODE]" is event, "Top level ..." is ""."""
    out = {}
    for title, text in sections.items():
        m = re.match(r"^`?\[(event(?= CODE)|[a-z]+)[^\]]*\]`?", title)
        if m:
            out[m.group(1)] = text
        elif title.lower().startswith("top level"):
            out[""] = text
    return out


def section_name(s):
    return {"": "top level", "event": "event CODE"}.get(s, s)


def help_commands():
    out = subprocess.run([HOOKQ, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out
    lines = out.stdout.splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip().lower().startswith("commands"))
    cmds = []
    for l in lines[start + 1:]:
        if not l.strip():
            if cmds:
                break
            continue
        m = re.match(r"^  ([a-z][a-z-]*)\b", l)
        if m:
            cmds.append(m.group(1))
    assert len(cmds) >= 10 and "run" in cmds and "check" in cmds, out.stdout
    return cmds


@suite.test
def every_command_and_flag_of_the_help_is_in_the_man_page_and_the_docs():
    man = read("docs", "man", "hookq.1.scd")
    docs = "\n".join(read("docs", f) for f in os.listdir(os.path.join(SRC, "docs"))
                     if f.endswith(".md")) + read("README.md")
    missing = []
    for cmd in help_commands():
        if not re.search(r"^\*%s\*" % re.escape(cmd), man, re.M):
            missing.append("hookq.1: command %s" % cmd)
        if "hookq %s" % cmd not in docs:
            missing.append("docs/*.md: command hookq %s" % cmd)
        out = subprocess.run([HOOKQ, cmd, "--help"], capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, (cmd, out)
        for flag in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out.stdout))):
            if flag in ("--help", "--config"):
                continue
            if flag not in man:
                missing.append("hookq.1: %s %s" % (cmd, flag))
            if flag not in docs:
                missing.append("docs/*.md: %s %s" % (cmd, flag))
    assert not missing, ("not documented (add each to docs/man/hookq.1.scd and to the "
                         "docs, e.g. docs/operations.md):\n  " + "\n  ".join(missing))


@suite.test
def every_config_key_is_in_hookq_ini_5_and_configuration_md_under_its_section():
    man = by_config_section(split_sections(read("docs", "man", "hookq.ini.5.scd"), r"^# (.*)$"))
    md = by_config_section(split_sections(read("docs", "configuration.md"), r"^#{2,3} (.*)$"))
    missing = []
    for section, keys in config_keys().items():
        if section not in man:
            missing.append("hookq.ini.5: no section [%s]" % section_name(section))
        if section not in md:
            missing.append("configuration.md: no section [%s]" % section_name(section))
        for key in keys:
            if section in man and not re.search(r"^\*%s\* = " % key, man[section], re.M):
                missing.append("hookq.ini.5: [%s] %s" % (section_name(section), key))
            if section in md and "| `%s` |" % key not in md[section]:
                missing.append("configuration.md: [%s] %s" % (section_name(section), key))
    assert not missing, ("not documented (a key of config.c needs a '*key* = ...' item in "
                         "docs/man/hookq.ini.5.scd and a '| `key` |' row in docs/configuration.md, "
                         "under its section; and a line in debian/hookq.ini):\n  " +
                         "\n  ".join(missing))


def config_defaults():
    """{(section, key): default} from the .def of the rows of config.c's
    keys[] that have one."""
    src = read("src", "lib", "config.c")
    table = src[src.index("static const struct keydef keys[] = {"):]
    table = table[:table.index("\n};")]
    out = {}
    for section, key, rest in re.findall(
            r'\{"([a-z_]*)",\s*"([a-z_]+)",\s*K_\w+,(.*?)\},', table, re.S):
        m = re.search(r'\.def = "([^"]*)"', rest)
        if m:
            out[(section, key)] = m.group(1)
    assert len(out) >= 30 and out[("worker", "lease")] == "30s", out
    return out


@suite.test
def every_default_of_the_key_table_is_the_one_hookq_ini_5_states():
    man = by_config_section(split_sections(read("docs", "man", "hookq.ini.5.scd"), r"^# (.*)$"))
    wrong = []
    for (section, key), default in sorted(config_defaults().items()):
        # The key's item: from its "*key* = " line to the next item.
        m = re.search(r"^\*%s\* = .*?(?=^\*[a-z_]+\* = |\Z)" % key, man[section],
                      re.M | re.S)
        item = " ".join(m.group(0).split()) if m else ""
        if "Default *%s*" % default not in item:
            wrong.append("[%s] %s: the table says %s; hookq.ini.5: %s" %
                         (section_name(section), key, default,
                          item[:120] or "no item"))
    assert not wrong, ("defaults that differ (the key table of config.c is the "
                       "one place they are set):\n  " + "\n  ".join(wrong))


@suite.test
def the_shipped_config_lists_every_key_and_is_valid():
    text = read("debian", "hookq.ini")
    # Sections as written, commented or not: "[redis]", ";[event post-create]".
    sections = split_sections("[]\n" + text, r"^;?\[(event|[a-z]*)[^\]]*\]")
    missing = []
    for section, keys in config_keys().items():
        for key in keys:
            if not re.search(r"^;?%s = " % key, sections.get(section, ""), re.M):
                missing.append("[%s] %s" % (section_name(section), key))
    assert not missing, ("debian/hookq.ini (the shipped /etc/hookq/hookq.ini) does not show "
                         "(add ';key = default' under its section):\n  " + "\n  ".join(missing))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKQ_")}
    path = os.path.join(SRC, "debian", "hookq.ini")
    r = subprocess.run([HOOKQ, "check", "-c", path], capture_output=True, text=True,
                       timeout=10, env=env)
    assert r.returncode == 0 and r.stdout == "ok: %s: 0 events\n" % path, r


@suite.test
def the_man_pages_are_built_and_render():
    for page in ("hookq.1", "hookq.ini.5"):
        path = os.path.join(BUILD, "man", page)
        assert os.path.exists(path), ("%s was not built: is scdoc installed? "
                                      "(tools/install-deps test)" % path)
        r = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True,
                           timeout=30, env=dict(os.environ, MANWIDTH="80"))
        assert r.returncode == 0 and r.stderr == "", (page, r.stderr)
        text = re.sub(".\b", "", r.stdout)  # no overstrike (bold, underline)
        assert "NAME" in text and "SEE ALSO" in text, text[:300]


@suite.test
def the_systemd_units_verify():
    if shutil.which("systemd-analyze") is None:
        print("skipped: no systemd-analyze (the package test verifies the units too)")
        return
    d = tempfile.mkdtemp(prefix="hq-units-")
    units = {"hookq.service": "hookq.service", "hookq.hookq-serve.service": "hookq-serve.service",
             "hookq.hookq-work.service": "hookq-work.service"}
    for src, name in units.items():
        text = read("debian", src)
        assert "Type=notify" in text and "ProtectSystem=strict" in text and "User=hookq" in text
        # TimeoutStopSec above [worker] shutdown_timeout's default (30 s).
        stop = re.search(r"^TimeoutStopSec=(\d+)s$", text, re.M)
        assert stop and int(stop.group(1)) > 30, (src, "TimeoutStopSec")
        # The built binary stands in for /usr/bin/hookq, which is not installed here.
        with open(os.path.join(d, name), "w") as f:
            f.write(text.replace("/usr/bin/hookq", os.path.abspath(HOOKQ)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"] +
                       [os.path.join(d, n) for n in units.values()],
                       capture_output=True, text=True, timeout=60)
    shutil.rmtree(d)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


@suite.test
def the_package_version_is_the_project_version():
    project = re.search(r"project\(hookq VERSION ([0-9.]+)", read("CMakeLists.txt")).group(1)
    first = read("debian", "changelog").splitlines()[0]
    m = re.match(r"hookq \(([^)]+)\) ", first)
    assert m and m.group(1) == project, (first, project)
    out = subprocess.run([HOOKQ, "--version"], capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "hookq " + project, out


if __name__ == "__main__":
    suite.run()
