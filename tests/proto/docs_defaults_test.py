"""The defaults that proto/mia/v1/audit.proto's comments give for TrainSection
agree with the `train` table of docs/config.md (the proto once said
`batched` defaults to true while the docs and core say: stacked on a GPU, one
model at a time per lane on a CPU).

Usage: docs_defaults_test.py REPOSITORY_ROOT
"""
import re
import sys

repo = sys.argv[1]
proto = open(repo + "/proto/mia/v1/audit.proto").read()
body = re.search(r"message TrainSection \{(.*?)\n\}", proto, re.S).group(1)
comments, comment = {}, []
for line in body.split("\n"):
    line = line.strip()
    if line.startswith("//"):
        comment.append(line[2:].strip())
        continue
    field = re.match(r"(?:optional |repeated )?[\w.]+ (\w+) = \d+;", line)
    if field:
        comments[field.group(1)] = " ".join(comment)
        comment = []

docs = open(repo + "/docs/config.md").read()
table = docs.split("## `train`")[1].split("\n## ")[0]
rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", table, re.M))


def norm(text):
    return text.replace("`", "").replace('"', "").strip().lower()


failures, compared = [], 0
for name, text in comments.items():
    said = re.search(r"(?:[Dd]efault|Unset:) (\S+?)[.:;,]?(?: |$)", text)
    if not said or name not in rows:
        continue
    compared += 1
    if norm(said.group(1)) != norm(rows[name]):
        failures.append(f"{name}: proto says {said.group(1)}, docs/config.md says {rows[name]}")

if compared < 10:
    failures.append(f"only {compared} defaults compared: did the proto or table format change?")
for f in failures:
    print("FAIL", f)
print(f"{compared} TrainSection defaults compared, {len(failures)} disagree")
sys.exit(1 if failures else 0)
