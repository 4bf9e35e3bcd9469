"""The PDU value: header, mandatory fields by name, TLVs in wire order."""

from dataclasses import dataclass, field
from typing import Any

from .constants import NO_RESPONSE, RESPONSE_BIT, CommandId, Status


@dataclass(slots=True)
class Pdu:
    """One SMPP PDU.

    `fields` holds the mandatory parameters by their spec names (see layouts.py). A
    response may hold fewer fields than its layout: many SMSCs send error responses
    without a body, and the encoder writes back exactly the fields present.
    `tlvs` is a list of (tag, value) in wire order; tags may repeat (callback_num).
    """

    command_id: int
    sequence: int = 0
    status: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    tlvs: list[tuple[int, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        try:
            return CommandId(self.command_id).name
        except ValueError:
            return f"command_0x{self.command_id:08x}"

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def tlv(self, tag: int, default: Any = None) -> Any:
        for t, value in self.tlvs:
            if t == tag:
                return value
        return default

    def response(self, status: int = Status.ESME_ROK, **fields: Any) -> "Pdu":
        """The response to this request, echoing its sequence number.

        Error responses are header-only unless fields are given (SMPP34.md §9.4);
        requests that have no response PDU get generic_nack.
        """
        if self.command_id in NO_RESPONSE or self.is_response:
            return generic_nack(self.sequence, status or Status.ESME_RINVCMDID)
        return Pdu(self.command_id | RESPONSE_BIT, self.sequence, status, fields)


def generic_nack(sequence: int, status: int) -> Pdu:
    return Pdu(CommandId.generic_nack, sequence, status)
