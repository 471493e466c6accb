"""The rooms of DESIGN.md and the files a newcomer relies on."""
import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"django", "celery", "webapp", "workers", "rest_framework", "kombu"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_imports_nothing_from_the_web_side():
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN)
        for path in (ROOT / "engine").rglob("*.py")
        if imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def test_web_side_never_imports_workers():
    for path in (ROOT / "webapp").rglob("*.py"):
        assert "workers" not in imported_roots(path), path


def test_templates_load_nothing_from_a_cdn():
    for path in (ROOT / "frontend").rglob("*"):
        if path.suffix in (".html", ".js", ".css"):
            assert not re.search(r"(src|href)=\"https?://", path.read_text()), path


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is installed by make test")
def test_docker_compose_file_is_valid_and_has_the_readme_services():
    result = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"], cwd=ROOT, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x", "POSTGRES_PASSWORD": "x"})
    assert result.returncode == 0, result.stderr
    config = result.stdout
    readme = (ROOT / "README.md").read_text()
    stack = readme.split("## Production stack", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([\w-]+)` \|", stack, flags=re.M))
    assert {"postgres", "redis", "web", "worker"} <= named
    for service in named:
        assert re.search(rf"^  {service}:$", config, flags=re.M), \
            f"service {service} of the README is not in the compose file"
    assert "driver: nvidia" in config and "healthcheck" in config


def test_readme_names_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_frontend_scripts_never_write_markup():
    """User data reaches the DOM as text: pages build nodes through dom.js (docs/security.md)."""
    sinks = re.compile(r"\.(innerHTML|outerHTML)\s*[+]?=|insertAdjacentHTML|document\.write|\beval\(|new Function\(")
    for path in (ROOT / "frontend" / "static" / "seglab").glob("*.js"):
        assert not sinks.search(path.read_text()), f"{path.name} writes markup; build DOM nodes with dom.js"
    for path in (ROOT / "frontend" / "templates").rglob("*.html"):
        text = path.read_text()
        assert "|safe" not in text and "autoescape off" not in text, path
    # The one filter that emits user-written markup sanitises it (webapp/review/templatetags/review.py).
    filters = {path.name for path in (ROOT / "webapp").rglob("templatetags/*.py") if "mark_safe(" in path.read_text()}
    assert filters == {"review.py"}, filters


def test_every_data_attribute_of_a_template_is_read_by_a_script_or_a_test():
    """A ``data-*`` attribute is a contract with a script (``element.dataset.name``, a ``[data-name]``
    selector) or a test's handle on the page; one that nothing reads is dead markup."""
    templates = ROOT / "frontend" / "templates"
    attributes = {name for path in templates.rglob("*.html")
                  for name in re.findall(r"\bdata-([a-z0-9-]+)=", path.read_text())}
    folders = (ROOT / "frontend" / "static" / "seglab", ROOT / "tests")
    scripts = [path for folder in folders for path in folder.rglob("*")
               if path.suffix in (".js", ".py") and path.name != "test_layout.py"]
    readers = "\n".join(path.read_text() for path in scripts)
    unread = []
    for name in sorted(attributes):
        camel = re.sub(r"-([a-z])", lambda match: match.group(1).upper(), name)
        as_property = re.search(rf"dataset\.{camel}\b|\{{[^}}]*\b{camel}\b[^}}]*\}}\s*=\s*[\w.]*dataset\b", readers)
        if not (as_property or f"data-{name}" in readers):
            unread.append(f"data-{name}")
    assert not unread, f"template data attributes no script or test reads: {unread}"
