"""The compliance catalogue and the survey question bank: loading the reference data files, and
reading a catalogue version. A version never changes once loaded: findings point at the questions
of the version they were assessed against, so a newer version leaves earlier results as they were."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from src.models import CatalogueVersion, Cluster, CompliancePoint, Question, SurveyQuestion
from src.models.catalogue import (
    CatalogueRead,
    CatalogueVersionRead,
    ClusterRead,
    CompliancePointRead,
    QuestionRead,
)
from src.services.errors import NotFound

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CATALOGUE_FILE = DATA_DIR / "catalogue.json"
SURVEY_FILE = DATA_DIR / "survey_questions.json"
NEWEST_FIRST = (col(CatalogueVersion.published_on).desc(), col(CatalogueVersion.version).desc())


def load_catalogue(session: Session, document: dict[str, Any] | None = None) -> CatalogueVersion:
    """Loads one catalogue version; a version already loaded is left as it is."""
    document = document or json.loads(CATALOGUE_FILE.read_text())
    version = str(document["version"])
    existing = session.get(CatalogueVersion, version)
    if existing is not None:
        return existing
    catalogue = CatalogueVersion(
        version=version, published_on=dt.date.fromisoformat(document["published_on"])
    )
    session.add(catalogue)
    session.flush()
    for cluster_position, cluster_doc in enumerate(document["clusters"]):
        cluster = Cluster(
            version=version,
            code=cluster_doc["code"],
            name=cluster_doc["name"],
            category=cluster_doc["category"],
            position=cluster_position,
        )
        session.add(cluster)
        session.flush()
        assert cluster.id is not None
        for point_position, point_doc in enumerate(cluster_doc["points"]):
            point = CompliancePoint(
                version=version,
                cluster_id=cluster.id,
                code=point_doc["code"],
                name=point_doc["name"],
                position=point_position,
            )
            session.add(point)
            session.flush()
            assert point.id is not None
            session.add_all(
                Question(
                    version=version,
                    point_id=point.id,
                    code=question["code"],
                    text=question["text"],
                    critical=question["critical"],
                    public=question["public"],
                    position=position,
                )
                for position, question in enumerate(point_doc["questions"])
            )
    session.flush()
    return catalogue


def load_survey_questions(session: Session) -> int:
    """Adds the survey questions not yet loaded; answers how many were added."""
    document = json.loads(SURVEY_FILE.read_text())
    known = set(session.exec(select(SurveyQuestion.code)).all())
    added = 0
    position = 0
    for category in document["categories"]:
        for question in category["questions"]:
            position += 1
            if question["code"] in known:
                continue
            session.add(
                SurveyQuestion(
                    code=question["code"],
                    category=category["code"],
                    text=question["text"],
                    position=position,
                )
            )
            added += 1
    session.flush()
    return added


def current_version(session: Session) -> CatalogueVersion | None:
    return session.exec(select(CatalogueVersion).order_by(*NEWEST_FIRST)).first()


def resolve_version(session: Session, *, version: str | None) -> CatalogueVersion:
    """The named version, or the current one when `version` is None; NotFound when there is none."""
    found = current_version(session) if version is None else session.get(CatalogueVersion, version)
    if found is None:
        raise NotFound(f"No catalogue version {version}." if version else "No catalogue loaded.")
    return found


@dataclass(frozen=True)
class CatalogueQuestion:
    """A question with its compliance point and cluster, as one flat row."""

    id: int
    code: str
    text: str
    critical: bool
    public: bool
    point_code: str
    point_name: str
    cluster_code: str
    cluster_name: str
    cluster_category: str


def catalogue_questions(session: Session, *, version: str) -> list[CatalogueQuestion]:
    """Every question of a version in catalogue order (cluster, point, question), in one query."""
    rows = session.execute(
        sa_select(
            col(Question.id),
            col(Question.code),
            col(Question.text),
            col(Question.critical),
            col(Question.public),
            col(CompliancePoint.code),
            col(CompliancePoint.name),
            col(Cluster.code),
            col(Cluster.name),
            col(Cluster.category),
        )
        .join(CompliancePoint, col(CompliancePoint.id) == col(Question.point_id))
        .join(Cluster, col(Cluster.id) == col(CompliancePoint.cluster_id))
        .where(col(Question.version) == version)
        .order_by(col(Cluster.position), col(CompliancePoint.position), col(Question.position))
    ).all()
    return [CatalogueQuestion(*row) for row in rows]


T = TypeVar("T")
Grouped = list[tuple[CatalogueQuestion, list[tuple[CatalogueQuestion, list[T]]]]]


def grouped(rows: Iterable[tuple[CatalogueQuestion, T]]) -> Grouped[T]:
    """Rows in catalogue order grouped by cluster, then by compliance point; each group is named
    by its first question (which carries its cluster's and point's code and name)."""
    clusters: Grouped[T] = []
    for question, value in rows:
        if not clusters or clusters[-1][0].cluster_code != question.cluster_code:
            clusters.append((question, []))
        points = clusters[-1][1]
        if not points or points[-1][0].point_code != question.point_code:
            points.append((question, []))
        points[-1][1].append(value)
    return clusters


def get_catalogue(session: Session, *, version: str | None) -> CatalogueRead:
    catalogue = resolve_version(session, version=version)
    versions = session.exec(select(CatalogueVersion).order_by(*NEWEST_FIRST)).all()
    questions = catalogue_questions(session, version=catalogue.version)
    clusters = [
        ClusterRead(
            code=cluster.cluster_code,
            name=cluster.cluster_name,
            category=cluster.cluster_category,
            points=[
                CompliancePointRead(code=point.point_code, name=point.point_name, questions=reads)
                for point, reads in points
            ],
        )
        for cluster, points in grouped(
            (
                question,
                QuestionRead(
                    code=question.code,
                    text=question.text,
                    critical=question.critical,
                    public=question.public,
                ),
            )
            for question in questions
        )
    ]
    return CatalogueRead(
        version=catalogue.version,
        published_on=catalogue.published_on,
        current=catalogue.version == versions[0].version,
        versions=[
            CatalogueVersionRead(version=row.version, published_on=row.published_on)
            for row in versions
        ],
        clusters=clusters,
    )
