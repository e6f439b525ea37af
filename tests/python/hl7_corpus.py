"""Realistic HL7 v2 messages written for mira's tests: ADT (admit, register, update, merge),
orders (ORM^O01, OMI^O23), results (ORU^R01 with long multi-line reports), of versions 2.3 to
2.8, with repetitions, escapes, Z-segments, other delimiters and character sets. Each is the
text a sender puts on the wire (segments ended by CR)."""


def msg(*segments):
    return "\r".join(segments) + "\r"


REPORT_LINES = [
    "EXAMINATION: CT CHEST WITH CONTRAST",
    "CLINICAL HISTORY: 64-year-old male smoker, weight loss. Evaluate for malignancy.",
    "TECHNIQUE: Axial images of the chest after 80 mL Omnipaque 350 IV; 1.25 mm reconstructions.",
    "COMPARISON: CT chest 2025-03-14.",
    "FINDINGS:",
    "Lungs: 2.3 x 1.8 cm spiculated nodule in the right upper lobe (series 4, image 56),",
    "previously 1.4 x 1.1 cm. No new nodules. Mild centrilobular emphysema.",
    "Pleura: No pleural effusion. No pneumothorax.",
    "Mediastinum: 1.2 cm right paratracheal lymph node (short axis), previously 0.8 cm.",
    "Heart: Normal size. Coronary artery calcifications. No pericardial effusion.",
    "Upper abdomen: 1.0 cm hypodense lesion in the left adrenal gland, indeterminate.",
    "Bones: No suspicious osseous lesion. Degenerative changes of the thoracic spine.",
    "IMPRESSION:",
    "1. Enlarging spiculated right upper lobe nodule, suspicious for primary lung cancer.",
    "   Recommend PET-CT and tissue sampling.",
    "2. Enlarging right paratracheal lymph node, possibly nodal metastasis.",
    "3. Indeterminate left adrenal nodule; attention on PET-CT.",
    "4. Emphysema. Coronary artery calcifications.",
]

MESSAGES = {
    "adt_a01_v25": msg(
        "MSH|^~\\&|EPIC|GHH ADT|MIRA|RADIOLOGY|20261130081500||ADT^A01^ADT_A01|ADT00001|P|2.5"
        "|||AL|NE",
        "EVN|A01|20261130081500|||JSMITH^Smith^John^^^^^^^^^^EI",
        "PID|1||MRN10001^^^GHH^MR~987654321^^^USSSA^SS~E4711^^^GHH^PI||EVERYMAN^ADAM^A^III^DR"
        "~EVERYMAN^ADDY^^^^^A||19610615|M||2106-3^White^HL70005|2222 HOME STREET^APT 4B^"
        "GREENSBORO^NC^27401-1020^USA^H~PO BOX 77^^GREENSBORO^NC^27402^USA^M||^PRN^PH^^1^555^"
        "5552004~^NET^Internet^adam@example.org|^WPN^PH^^1^555^5553000|EN^English^ISO639|M|"
        "CHR|AC555444444||67-A4335^OH^20301231",
        "NK1|1|EVERYWOMAN^EVE^E|SPO^Spouse^HL70063|2222 HOME STREET^^GREENSBORO^NC^27401|"
        "^PRN^PH^^1^555^5552004",
        "PV1|1|I|2000^2012^01^GHH^^^^RAD||||004777^ATTEND^AARON^A^^^MD|0148^REFER^RUTH^^^DR|"
        "||SUR||||ADM|A0||||||||||||||||||||||||||20261130080000",
        "AL1|1|DA|1605^Penicillin^L|SV|Hives~Rash|20200101",
        "AL1|2|DA|1652^Iodinated contrast^L|MO|Nausea",
        "ZPD|1|VIP^Very important person&Board member|Y",
    ),
    "adt_a04_v23": msg(
        "MSH|^~\\&|REG|CLINIC|MIRA|RAD|202611301000||ADT^A04|REG-2026-0042|P|2.3",
        "EVN|A04|202611301000",
        "PID|||OUT20042^^^CLINIC||O'BRIEN^SIOBHAN^M||19881103|F|||14 CASTLE ROAD^^DUBLIN^^D04^IRL",
        "PV1||O|XRAY^^^CLINIC||||1234^WHO^GREGORY^^^DR",
    ),
    "adt_a08_escapes_v24": msg(
        "MSH|^~\\&|ADT|HOSP|MIRA|RAD|20261201101010||ADT^A08^ADT_A01|A08-77|P|2.4",
        "EVN|A08|20261201101010",
        "PID|1||MRN10001^^^GHH^MR||EVERYMAN^ADAM^A^III||19610615|M|||2222 HOME STREET \\T\\"
        " ANNEX^c/o SMITH \\S\\ JONES^GREENSBORO^NC^27401||||||||||||||||||Y",
        "NTE|1||Address line uses \\F\\ and \\R\\ and \\E\\ literally; hex \\X4D4952\\A here.",
        "ZAD|note with \\.br\\ a line break and \\.sp2\\ two more|trailing\\.sk3\\skip",
    ),
    "adt_a40_merge_v25": msg(
        "MSH|^~\\&|MPI|GHH|MIRA|RAD|20261201120000||ADT^A40^ADT_A39|MRG-9|P|2.5",
        "EVN|A40|20261201120000",
        "PID|1||MRN10001^^^GHH^MR||EVERYMAN^ADAM^A^III||19610615|M",
        "MRG|MRN99999^^^GHH^MR~OLDACCT^^^GHH^AN||ACCT555",
        "PV1||N",
    ),
    "orm_o01_v23": msg(
        "MSH|^~\\&|RIS|GHH|MIRA|RAD|20261201083000||ORM^O01|ORM-1001|P|2.3",
        "PID|1||MRN10001^^^GHH^MR||EVERYMAN^ADAM^A^III||19610615|M",
        "PV1|1|O|RAD^CT1^01",
        "ORC|NW|PLC-5001^RIS|FIL-5001^RIS||SC||^^^20261202090000^^R||20261201083000|"
        "CLERK^Clerk^Carl|||RAD^Radiology",
        "OBR|1|PLC-5001^RIS|FIL-5001^RIS|71260^CT CHEST W CONTRAST^CPT4|||20261201083000|||||||"
        "|0148^REFER^RUTH^^^DR||ACC2026-0001|RP-5001|SPS-5001||||CT|||^^^20261202090000^^R|||||"
        "||||CT1",
        "NTE|1|P|Patient has contrast allergy; premedicate per protocol.",
    ),
    "omi_o23_v251": msg(
        "MSH|^~\\&|RIS|GHH|MIRA|RAD|20261201083100||OMI^O23^OMI_O23|OMI-77|P|2.5.1",
        "PID|1||MRN10002^^^GHH^MR||DOE^JANE^Q||19750230|F",
        "PV1|1|O|RAD^MR2^01",
        "ORC|NW|PLC-6001^RIS|FIL-6001^RIS||SC||||20261201083100",
        "TQ1|1||||||20261203143000|20261203150000|R",
        "OBR|1|PLC-6001^RIS|FIL-6001^RIS|70553^MRI BRAIN W/WO CONTRAST^CPT4",
        "IPC|ACC2026-0002|RP-6001|1.2.826.0.1.3680043.10.1139.123456789|SPS-6001|MR|"
        "^^^T1W AX&T2W AX&FLAIR|MR2",
    ),
    "oru_r01_report_v25": msg(
        "MSH|^~\\&|PACSREP|GHH|MIRA|RAD|20261201160000||ORU^R01^ORU_R01|ORU-3001|P|2.5",
        "PID|1||MRN10001^^^GHH^MR||EVERYMAN^ADAM^A^III||19610615|M",
        "ORC|RE|PLC-5001^RIS|FIL-5001^RIS",
        "OBR|1|PLC-5001^RIS|FIL-5001^RIS|71260^CT CHEST W CONTRAST^CPT4|||20261202090000||||||"
        "|||0148^REFER^RUTH^^^DR||ACC2026-0001||||20261201160000|||F|||||||1234&RADIOLOGIST&RITA",
        *[f"OBX|{i + 1}|TX|71260^CT CHEST W CONTRAST^CPT4|{i + 1}|{line}||||||F|||20261201160000"
          for i, line in enumerate(REPORT_LINES)],
        "NTE|1||Dictated by Dr. Radiologist; signed 2026-12-01 16:00.",
    ),
    "oru_r01_ft_preliminary_v24": msg(
        "MSH|^~\\&|PACSREP|GHH|MIRA|RAD|20261201150000||ORU^R01|ORU-3000|P|2.4",
        "PID|1||MRN10002^^^GHH^MR||DOE^JANE^Q||19750230|F",
        "OBR|1|PLC-6001^RIS|FIL-6001^RIS|70553^MRI BRAIN^CPT4|||20261203143000||||||||||"
        "ACC2026-0002||||20261201150000|||P",
        "OBX|1|FT|IMP^Impression^L||No acute intracranial abnormality.\\.br\\Small vessel "
        "ischemic changes \\T\\ volume loss, age-appropriate.\\.br\\\\.br\\Preliminary \\S\\ "
        "final to follow.||||||P",
        "OBX|2|NM|8867-4^Heart rate^LN||72|/min^beats per minute^UCUM|60-100|N|||F",
        "OBX|3|ST|NOTE^Note^L||Technologist: motion on DWI~second repetition||||||F",
    ),
    "oru_r01_utf8_v28": msg(
        "MSH|^~\\&|PACSREP|KLINIKUM|MIRA|RAD|20261201170000||ORU^R01^ORU_R01|ORU-UTF8|P|2.8"
        "||||||UNICODE UTF-8",
        "PID|1||K-4711^^^KLINIKUM^MR||Müller^Jürgen^Ö||19550505|M|||Straße 5^^München^^80331^DEU",
        "OBR|1||F-1|XR^Röntgen Thorax^L",
        "OBX|1|TX|BEF^Befund^L||Kein Nachweis eines Infiltrats. Herz normal groß.||||||F",
        "OBX|2|TX|IMP^所見^L||肺野に異常なし。Ångström: 5 Å.||||||F",
    ),
    "orm_o01_other_delimiters_v23": msg(
        "MSH!@#$%!RIS!GHH!MIRA!RAD!202612011200!!ORM@O01!DELIM-1!P!2.3",
        "PID!1!!MRN7@@@GHH@MR#ALT7@@@OTHER!!SMITH@JOHN%JR!!19600101!M",
        "ORC!NW!P-7!F-7",
        "OBR!1!P-7!F-7!74177@CT ABD PELVIS@CPT4!!!!!!!!!!!!!!ACC-7!!!!!!!!CT",
        "NTE!1!!uses | and ^ and ~ and & and \\ as plain text$F$ and escaped bang",
    ),
}

LATIN1 = (
    "MSH|^~\\&|REG|HOPITAL|MIRA|RAD|20261201090000||ADT^A08|L1-1|P|2.5||||||8859/1\r"
    "PID|1||F-1^^^HOP^MR||LEFÈVRE^HÉLÈNE^Zoë||19700707|F|||12 rue de la Paix^^Paris^^75002^FRA\r"
).encode("latin-1")

BATCH = (
    "FHS|^~\\&|RIS|GHH|MIRA|RAD|20261201000000\r"
    "BHS|^~\\&|RIS|GHH|MIRA|RAD|20261201000000\r"
    + MESSAGES["orm_o01_v23"]
    + MESSAGES["adt_a04_v23"]
    + "BTS|2\r"
    "BHS|^~\\&|RIS|GHH|MIRA|RAD|20261201000001\r"
    + MESSAGES["oru_r01_report_v25"]
    + "BTS|1\r"
    "FTS|2\r"
)
