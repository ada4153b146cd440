"""A seeded generator of screwdriver.yaml files for the differential test.

Each file is built from pools of values that the reference accepts and values it refuses, so
the generated corpus mixes valid pipelines with every kind of error, in every combination.
"""

from __future__ import annotations

import random
from typing import Any

import yaml

IMAGES = ["alpine", "node:20", "python:3.12", "node:{{NODE}}", "stable", "edge"]
BAD_IMAGES = ["bad image", "x;y"]
STEP_NAMES = ["build", "test", "lint", "teardown-clean", "pretest", "posttest", "init"]
TRIGGERS = [
    "~commit",
    "~pr",
    "~commit:main",
    "~commit:/^rel-.*$/",
    "~pr:/feat/",
    "~pr-closed",
    "~tag",
    "~release:/^v/",
    "~subscribe",
    "~sd@12:deploy",
    "sd@12:deploy",
    "~sd@3:stage@x:setup",
]
BAD_TRIGGERS = ["~commit:/[/", "bad name", "~stage@nowhere"]
ENV_VALUES: list[Any] = ["x", 1, 2.5, True, None, [1, "a"], {"k": "v"}, "$HOME/x", ""]
CRONS = ["* * ? * *", "0 9-17 ? * MON-FRI", "*/5 * ? * 1#2", "0 0 1 * ?", "0 0 ? * 0-7/2"]
BAD_CRONS = ["* * * * *", "61 * ? * *", "0 0 L * ?", "0 0 31 4 ?", "0 0 ? JAN,FEB *"]
TEMPLATES = [
    "node-build@1.0.0",
    "node-build@stable",
    "node-build@1",
    "node-build",
    "acme/deploy@1.0.0",
    "acme/deploy@1.2",
    "acme/lint@3.1.4",
    "acme/matrix@1.0.0",
]
BAD_TEMPLATES = ["secure@0.1.0", "acme/ghost@1.0.0", "acme/lint@3.1.4"]
CACHE_DIRS = ["node_modules", "~/.npm", "/abs/dir", "../up", "dir?q=1"]
BAD_CACHE_DIRS = ["a b", "http://x/y"]
SLACK: list[Any] = ["chan", ["a", "b"], {"channels": ["a"], "statuses": ["FAILURE"]}]
BAD_SLACK: list[Any] = [[], 5, {"channels": ["a"], "statuses": ["DONE"]}]
EMAIL: list[Any] = ["a@example.com", ["b@example.org"], {"addresses": ["c@example.net"]}]
BAD_EMAIL: list[Any] = ["bad", [], {"addresses": "x@example.com"}]


class ConfigGenerator:
    """Builds random configs from a seed; the same seed always gives the same files."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        # A strict config draws only from values the reference accepts; the others may break.
        self.strict = True

    def pool(self, good: list[Any], bad: list[Any]) -> list[Any]:
        """Return the values to draw from: the good ones, plus the bad ones unless strict."""
        return good if self.strict else good + bad

    def chance(self, probability: float) -> bool:
        """Return True with the given probability."""
        return self.random.random() < probability

    def pick(self, pool: list[Any]) -> Any:
        """Return one item of pool."""
        return self.random.choice(pool)

    def some(self, pool: list[Any], most: int = 3) -> list[Any]:
        """Return up to `most` distinct items of pool."""
        return self.random.sample(pool, self.random.randint(1, min(most, len(pool))))

    def steps(self) -> list[Any]:
        """Return steps in the three forms, sometimes with duplicates or misplaced teardown."""
        steps: list[Any] = []
        names = self.some(self.pool(STEP_NAMES, ["sd-bad"]), 4)
        if self.strict:
            names.sort(key=lambda name: name.startswith("teardown-"))
        for name in names:
            form = self.random.randint(0, 2 if self.strict else 3)
            if form == 0:
                steps.append(f"echo {name}")
            elif form == 1:
                steps.append({name: f"make {name}"})
            elif form == 2:
                steps.append({name: {"command": f"make {name}"}})
            else:
                steps.append({name: {"command": f"make {name}", "locked": True}})
        if not self.strict and self.chance(0.1):
            steps.append(dict(steps[0]) if isinstance(steps[0], dict) else steps[0])
        return steps

    def job(self, names: list[str], own: str) -> dict[str, Any]:
        """Return one job definition using a random subset of the job keys."""
        job: dict[str, Any] = {}
        if self.chance(0.95 if self.strict else 0.85):
            job["image"] = self.pick(self.pool(IMAGES, BAD_IMAGES))
        if self.strict or self.chance(0.8):
            job["steps"] = self.steps()
        # Strict jobs require only jobs listed before them, so they never form a cycle.
        upstream = names[: names.index(own)] if self.strict and own in names else names
        if self.chance(0.7):
            pool = self.pool(TRIGGERS, BAD_TRIGGERS) + [n for n in upstream if n != own]
            pool += [f"~{n}" for n in upstream if n != own]
            requires = self.some(pool)
            job["requires"] = requires if self.chance(0.8) else requires[0]
        if self.chance(0.25):
            job["environment"] = {
                self.pick(self.pool(["A", "B", "NODE", "C_1"], ["lower"])): self.pick(ENV_VALUES)
                for _ in range(self.random.randint(1, 3))
            }
        if self.chance(0.2):
            job["matrix"] = {
                self.pick(["NODE", "OS", "X"]): self.some(
                    self.pool([18, 20, "linux", "a", True], [0]), 4
                )
                for _ in range(self.random.randint(1, 2))
            }
        if self.chance(0.15):
            job["secrets"] = self.some(self.pool(["TOKEN", "NPM_TOKEN"], ["bad"]), 2)
        if self.chance(0.15):
            job["annotations"] = {
                self.pick(
                    [
                        "screwdriver.cd/timeout",
                        "screwdriver.cd/displayName",
                        "screwdriver.cd/virtualJob",
                        "screwdriver.cd/bogus",
                        "screwdriver.cd/mergeSharedSteps",
                        "custom",
                    ]
                ): self.pick([True, 5, "x"])
            }
        if self.chance(0.1):
            job["settings"] = self.pick(
                [
                    {"slack": self.pick(self.pool(SLACK, BAD_SLACK))},
                    {"email": self.pick(self.pool(EMAIL, BAD_EMAIL))},
                    {},
                ]
            )
        if self.chance(0.1):
            job["freezeWindows"] = self.some(self.pool(CRONS, BAD_CRONS), 2)
        if self.chance(0.1):
            job["blockedBy"] = self.some(
                ["~" + name for name in names] + self.pool(["~sd@1:x"], ["x"]), 2
            )
        if self.chance(0.1):
            job["sourcePaths"] = self.pick([["src/"], "docs/", ["a", "b"]])
        if self.chance(0.08):
            job["description"] = self.pick(self.pool(["does things"], ["d" * 101]))
        if self.chance(0.08):
            job["parameters"] = {
                "P": self.pick(
                    self.pool(["v", ["a", "b"], {"value": "x", "description": "d"}], [5])
                )
            }
        if not self.strict and self.chance(0.1):
            job["cache"] = self.pick([True, False])
        if self.chance(0.2):
            job["template"] = self.pick(self.pool(TEMPLATES, BAD_TEMPLATES))
        if self.chance(0.08):
            job["order"] = self.some(["init", "deploy", "verify", "test", "build", "install"], 4)
        if not self.strict and self.chance(0.05):
            job[self.pick(["nope", "step", "image_name"])] = 1
        if self.strict and "{{NODE}}" in job.get("image", "") and "template" not in job:
            job["matrix"] = {**job.get("matrix", {}), "NODE": [18, 20]}
        return job

    def config(self) -> dict[str, Any]:
        """Return one whole screwdriver.yaml as data."""
        self.strict = self.chance(0.6)
        count = self.random.randint(1, 6)
        names = self.random.sample(
            self.pool(["main", "test", "deploy", "publish", "lint", "docs", "e2e"], ["pr-check"]),
            count,
        )
        config: dict[str, Any] = {}
        if self.chance(0.4):
            config["shared"] = self.job(names, "")
            if self.strict or self.chance(0.5):
                config["shared"].pop("requires", None)
        config["jobs"] = {name: self.job(names, name) for name in names}
        if self.chance(0.2):
            members = self.some(names, 2)
            stage: dict[str, Any] = {"jobs": members}
            if self.strict:
                # Jobs in a stage may only require jobs of the same stage, and have no paths.
                for name in members:
                    config["jobs"][name].pop("requires", None)
                    config["jobs"][name].pop("sourcePaths", None)
                config.get("shared", {}).pop("sourcePaths", None)
            if self.chance(0.3):
                stage["requires"] = self.pick(["~commit", ["~pr"], "~stage@other"])
            if self.chance(0.2):
                stage["setup"] = {"image": "alpine", "steps": [{"prep": "echo prep"}]}
            if self.chance(0.1):
                stage["teardown"] = {"image": "alpine", "steps": ["echo bye"]}
            config["stages"] = {"one": stage}
            if not self.strict and self.chance(0.3):
                config["stages"]["other"] = {"jobs": [self.pick(names)]}
        if self.chance(0.2):
            cache: dict[str, Any] = {}
            for scope in self.some(["pipeline", "event", "job"], 3):
                dirs = self.some(self.pool(CACHE_DIRS, BAD_CACHE_DIRS), 2)
                if scope == "job":
                    cache["job"] = {self.pick(self.pool(names, ["ghost"])): dirs}
                else:
                    cache[scope] = dirs
            config["cache"] = cache
        if self.chance(0.2):
            config["parameters"] = {
                "region": self.pick(["us", ["us", "eu"], {"value": "eu", "description": "where"}])
            }
        if self.chance(0.1):
            config["annotations"] = {
                self.pick(["screwdriver.cd/restrictPR", "screwdriver.cd/whatever", "x"]): "all"
            }
        if self.chance(0.05):
            config["subscribe"] = {"scmUrls": [{"git@github.com:a/b.git": ["~commit"]}]}
        if self.chance(0.05):
            config["childPipelines"] = {"scmUrls": ["git@github.com:a/c.git"]}
        if self.chance(0.05):
            config["version"] = self.pick(self.pool([4, 1], [51]))
        return config

    def text(self) -> str:
        """Return one generated screwdriver.yaml as text."""
        return yaml.safe_dump(self.config(), sort_keys=False, allow_unicode=True)


def generated_configs(count: int, seed: int = 20240603) -> list[str]:
    """Return `count` generated screwdriver.yaml texts."""
    generator = ConfigGenerator(seed)
    return [generator.text() for _ in range(count)]
