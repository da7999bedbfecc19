"""A request's ``steering`` entries checked against the catalog and the model, before queueing:
unknown vectors, vectors of another model, layers out of range, a scale that contradicts the
deprecated booleans, all become 400s naming the entry's field."""

from __future__ import annotations

from collections.abc import Sequence

from steerlab.errors import LayerError, SpecError, SteerlabError
from steerlab.layers import parse_layers
from steerlab.serve.catalog import VectorCatalog
from steerlab.serve.engine import RowSteering
from steerlab.serve.protocol import ApiError, SteeringBody
from steerlab.steer import SteerSpec, plan_layers, resolve_scale


def resolve_steering(
    entries: Sequence[SteeringBody],
    catalog: VectorCatalog,
    num_layers: int,
    *,
    single: bool = False,
) -> tuple[RowSteering, ...]:
    """The entries as :class:`RowSteering`, in order.

    Args:
        entries: the request's steering entries.
        catalog: the vectors on offer.
        num_layers: the served model's decoder blocks.
        single: the request sent one object rather than a list (errors say ``steering.x``).

    Raises:
        ApiError: 400 naming the entry's field at fault.
    """
    resolved: list[RowSteering] = []
    for number, body in enumerate(entries):
        where = "steering" if single else f"steering[{number}]"
        entry = catalog.get(body.vector)
        if entry is None:
            offered = ", ".join(sorted(catalog.entries)) or "none"
            raise ApiError(
                400,
                f"{where}.vector: no vector {body.vector!r} here (vectors: {offered})",
                param=f"{where}.vector",
                code="vector_not_found",
            )
        if entry.error is not None or entry.vector is None:
            raise ApiError(
                400,
                f"{where}.vector: {body.vector!r} cannot steer this model: {entry.error}",
                param=f"{where}.vector",
                code="vector_incompatible",
            )
        try:
            layers = (
                tuple(entry.default_layers())
                if body.layers is None
                else parse_layers(body.layers, num_layers)
            )
        except LayerError as exc:
            raise ApiError(
                400, f"{where}.layers: {exc}", param=f"{where}.layers", code="invalid_layers"
            ) from None
        try:
            # Like layers, an unsaid scale is the vector's: the scale it was calibrated in.
            scale = resolve_scale(
                body.scale, body.normalize, body.scale_by_norm, default=entry.default_scale()
            )
            spec = SteerSpec(
                coefficient=body.coefficient,
                layers=layers,
                operator=body.operator,
                positions=body.positions,
                scale=scale,
            )
            plan_layers(entry.vector, spec, num_layers)
        except SpecError as exc:
            raise ApiError(400, f"{where}: {exc}", param=where, code="invalid_value") from None
        except SteerlabError as exc:  # a layer the vector lacks, a zero direction
            raise ApiError(
                400, f"{where}.layers: {exc}", param=f"{where}.layers", code="invalid_layers"
            ) from None
        resolved.append(
            RowSteering(
                vector=body.vector,
                coefficient=float(body.coefficient),
                layers=tuple(layers),
                operator=body.operator,
                positions=body.positions,
                scale=scale,
            )
        )
    return tuple(resolved)
