"""The compliance catalogue and the survey question bank: loading the reference data files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from src.models import CatalogueVersion, Cluster, CompliancePoint, Question, SurveyQuestion

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CATALOGUE_FILE = DATA_DIR / "catalogue.json"
SURVEY_FILE = DATA_DIR / "survey_questions.json"


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
    return session.exec(
        select(CatalogueVersion).order_by(col(CatalogueVersion.published_on).desc())
    ).first()
