"""Lines per module of compiler/, runtime/ and grammar/, by folder: printed in CI so that size
stays visible (docs/architecture.md). Never fails."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    total = 0
    for top in ("compiler", "runtime", "grammar"):
        files = sorted(p for p in (ROOT / top).rglob("*")
                       if p.suffix in (".py", ".lark") and "__pycache__" not in p.parts)
        for folder in sorted({p.parent for p in files}):
            rows = [(p.name, len(p.read_text(encoding="utf-8").splitlines())) for p in files if p.parent == folder]
            lines = sum(n for _, n in rows)
            total += lines
            print(f"{folder.relative_to(ROOT)}/  ({lines} lines)")
            for name, n in rows:
                print(f"    {n:5d}  {name}")
    print(f"total: {total} lines")


if __name__ == "__main__":
    main()
