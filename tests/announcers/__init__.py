"""Tests of the Layer-2 announcer (``announcers.arp``), the mock and the Announcer contract."""
