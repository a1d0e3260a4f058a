"""The code tables of HJ 212-2017 the uplink uses: command numbers (CN, §6.6.5 table 9),
system codes (ST, §6.6.1 table 5), the return codes of 9011 and 9012 (QnRtn table 7,
ExeRtn table 6), the data flags (table 8) and the pollutant code of CO2 (Appendix B
table B.2). Each table is "expandable" (可扩充) in the standard: a code not listed here
is not an error, only one we cannot name. Codes for electrical quantities are not fixed
by HJ 212-2017 for this use; they come from the platform's configuration (docs/hj212.md).
"""

from __future__ import annotations

from typing import Final

# --- commands (table 9); the field unit is the agent, the host the platform ----------------

CN_SET_TIMEOUT: Final = "1000"  # host sets OverTime and ReCount
CN_GET_TIME: Final = "1011"  # host asks for the field unit's time; the unit answers with 1011
CN_SET_TIME: Final = "1012"  # host sets the field unit's time (SystemTime)
CN_TIME_CALIBRATION: Final = "1013"  # field unit asks the host to set its time (a notice)
CN_GET_RTD_INTERVAL: Final = "1061"  # RtdInterval, seconds, 30 to 3600
CN_SET_RTD_INTERVAL: Final = "1062"
CN_GET_MIN_INTERVAL: Final = "1063"  # MinInterval, minutes: 1 2 3 4 5 6 10 12 15 20 30
CN_SET_MIN_INTERVAL: Final = "1064"
CN_SET_PASSWORD: Final = "1072"  # NewPW
CN_REALTIME: Final = "2011"  # real-time data; the host starts it with 2011, stops it with 2012
CN_STOP_REALTIME: Final = "2012"
CN_DAY: Final = "2031"  # daily data; the host asks for history with BeginTime/EndTime
CN_MINUTE: Final = "2051"  # minute data (per MinInterval)
CN_HOUR: Final = "2061"  # hourly data
CN_RESTART_TIME: Final = "2081"  # the field unit reports when it started (RestartTime)
CN_REQUEST_ANSWER: Final = "9011"  # QnRtn: the field unit accepts or refuses a request
CN_RESULT: Final = "9012"  # ExeRtn: the outcome of a request
CN_NOTICE_ANSWER: Final = "9013"  # answer to a notice (1013, 2012 ...), either way
CN_DATA_ANSWER: Final = "9014"  # the host's answer to uploaded data that wanted one

ST_INTERACTION: Final = "91"  # table 5: 系统交互, the ST of 9011 to 9014 in Appendix C

# --- system codes (table 5, after GB/T 16706-1996) ------------------------------------

SYSTEMS: Final[dict[str, str]] = {
    "21": "surface water quality",
    "22": "air quality",
    "23": "acoustic environment quality",
    "24": "groundwater quality",
    "25": "soil quality",
    "26": "sea water quality",
    "27": "volatile organic compounds",
    "31": "atmospheric pollution source",
    "32": "surface water pollution source",
    "33": "groundwater pollution source",
    "34": "marine pollution source",
    "35": "soil pollution source",
    "36": "noise pollution source",
    "37": "vibration pollution source",
    "38": "radioactive pollution source",
    "39": "construction site dust source",
    "41": "electromagnetic pollution source",
    "51": "flue gas emission process (working conditions)",
    "52": "waste water emission process (working conditions)",
    "91": "system interaction",
}

# --- what a 9011 says (QnRtn, table 7) and a 9012 (ExeRtn, table 6) --------------------

QN_RTN: Final[dict[int, str]] = {
    1: "ready to execute the request",
    2: "request refused",
    3: "PW wrong",
    4: "MN wrong",
    5: "ST wrong",
    6: "Flag wrong",
    7: "QN wrong",
    8: "CN wrong",
    9: "CRC wrong",
    100: "unknown error",
}
QN_RTN_READY: Final = 1
QN_RTN_REFUSED: Final = 2
QN_RTN_BAD_PW: Final = 3
QN_RTN_BAD_MN: Final = 4

EXE_RTN: Final[dict[int, str]] = {
    1: "executed",
    2: "failed, reason unknown",
    3: "request condition wrong",
    4: "communication timeout",
    5: "system busy, cannot execute",
    6: "system fault",
    100: "no data",
}
EXE_RTN_DONE: Final = 1
EXE_RTN_FAILED: Final = 2
EXE_RTN_BAD_CONDITION: Final = 3
EXE_RTN_NO_DATA: Final = 100

# --- the flag of each value, `xxxxxx-Flag` (table 8) ------------------------------------

DATA_FLAGS: Final[dict[str, str]] = {
    "N": "instrument working normally",
    "F": "instrument stopped",
    "M": "instrument under maintenance",
    "S": "value set by hand",
    "D": "instrument fault",
    "C": "instrument calibrating",
    "T": "sample above the measuring range",
    "B": "communication between instrument and data collector failed",
}

# --- pollutant codes (Appendix B) -------------------------------------------------------

CO2: Final = "a05001"  # table B.2: 二氧化碳, mg/m3 concentration, kg emission, N3.3
