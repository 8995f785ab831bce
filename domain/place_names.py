"""Well-known place names, so a capitalised name no trigger typed (`Been only to Rome once`,
`Paris?!`) is a place, not a person. Pure: a fixed list, no I/O.

Countries, US states and Canadian provinces, continents and large regions, and the world's
best-known cities. Names that are as often a person's (`Georgia`, `Virginia`, `Washington`,
`Jordan`, `Chad`, `Sydney`, `Austin`, `Charlotte`, `Phoenix`) are left out: they stay persons
unless a trigger (`in`, `moved to`, `from`, `visited`...) says otherwise. `Paris` is in: the
city is named far more often than the first name."""

from __future__ import annotations

__all__ = ["is_place_name"]

_COUNTRIES = """
Afghanistan|Albania|Algeria|Andorra|Angola|Argentina|Armenia|Australia|Austria|Azerbaijan|Bahamas|Bahrain|
Bangladesh|Barbados|Belarus|Belgium|Belize|Benin|Bhutan|Bolivia|Bosnia|Botswana|Brazil|Brunei|Bulgaria|Burkina Faso|
Burundi|Cambodia|Cameroon|Canada|Chile|China|Colombia|Congo|Costa Rica|Croatia|Cuba|Cyprus|Czechia|Czech Republic|
Denmark|Djibouti|Dominican Republic|Ecuador|Egypt|El Salvador|England|Eritrea|Estonia|Eswatini|Ethiopia|Fiji|Finland|
France|Gabon|Gambia|Germany|Ghana|Greece|Greenland|Grenada|Guatemala|Guinea|Guyana|Haiti|Honduras|Hungary|Iceland|
India|Indonesia|Iran|Iraq|Ireland|Israel|Italy|Jamaica|Japan|Kazakhstan|Kenya|Kosovo|Kuwait|Kyrgyzstan|Laos|Latvia|
Lebanon|Lesotho|Liberia|Libya|Liechtenstein|Lithuania|Luxembourg|Madagascar|Malawi|Malaysia|Maldives|Mali|Malta|
Mauritania|Mauritius|Mexico|Moldova|Monaco|Mongolia|Montenegro|Morocco|Mozambique|Myanmar|Namibia|Nepal|Netherlands|
New Zealand|Nicaragua|Niger|Nigeria|North Korea|North Macedonia|Norway|Oman|Pakistan|Palestine|Panama|
Papua New Guinea|Paraguay|Peru|Philippines|Poland|Portugal|Puerto Rico|Qatar|Romania|Russia|Rwanda|Samoa|
San Marino|Saudi Arabia|Scotland|Senegal|Serbia|Seychelles|Sierra Leone|Singapore|Slovakia|Slovenia|Somalia|
South Africa|South Korea|South Sudan|Spain|Sri Lanka|Sudan|Suriname|Sweden|Switzerland|Syria|Taiwan|Tajikistan|
Tanzania|Thailand|Tibet|Togo|Tonga|Trinidad|Tunisia|Turkey|Turkmenistan|Uganda|Ukraine|United Arab Emirates|
United Kingdom|United States|Uruguay|Uzbekistan|Vanuatu|Venezuela|Vietnam|Wales|Yemen|Zambia|Zimbabwe|
USA|UK|UAE
"""
_REGIONS = """
Africa|Antarctica|Asia|Europe|North America|South America|Central America|Latin America|Scandinavia|Caribbean|
Middle East|Southeast Asia|Mediterranean|Balkans|Siberia|Patagonia|Sahara|Alps|Andes|Himalayas|Rockies|
Midwest|New England|Bavaria|Tuscany|Provence|Catalonia|Andalusia|Sicily|Sardinia|Crete|Bali|Hawaii|Alaska|
"""
_STATES = """
Alabama|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Idaho|Illinois|Indiana|Iowa|Kansas|
Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|
New Hampshire|New Jersey|New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|
Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|West Virginia|Wisconsin|
Wyoming|Ontario|Quebec|British Columbia|Alberta|Manitoba|Nova Scotia
"""
_CITIES = """
Amsterdam|Athens|Atlanta|Auckland|Baltimore|Bangkok|Barcelona|Beijing|Belfast|Berlin|Bogota|Bordeaux|Boston|
Brisbane|Brooklyn|Brussels|Bucharest|Budapest|Buenos Aires|Cairo|Calgary|Cancun|Cape Town|Chicago|Cincinnati|
Cleveland|Copenhagen|Dallas|Delhi|Denver|Detroit|Dubai|Dublin|Edinburgh|Frankfurt|Geneva|Glasgow|Hamburg|Havana|
Helsinki|Hong Kong|Honolulu|Houston|Istanbul|Jakarta|Jerusalem|Johannesburg|Kyoto|Lagos|Las Vegas|Lima|Lisbon|
Liverpool|London|Los Angeles|Lyon|Madrid|Manchester|Manhattan|Manila|Marseille|Melbourne|Memphis|Miami|Milan|
Minneapolis|Montreal|Moscow|Mumbai|Munich|Nairobi|Naples|Nashville|New Orleans|Orlando|Osaka|Oslo|Ottawa|
Oxford|Philadelphia|Pittsburgh|Portland|Prague|Reykjavik|Rio|Rio de Janeiro|Rome|Rotterdam|Sacramento|
San Antonio|San Diego|San Francisco|San Jose|Sao Paulo|Seattle|Seoul|Shanghai|Stockholm|Seville|
St. Louis|Stuttgart|Taipei|Tampa|Tel Aviv|Tokyo|Toronto|Valencia|Vancouver|Venice|Vienna|Warsaw|Zurich|
Paris
"""

_PLACES = frozenset(name.strip().casefold() for block in (_COUNTRIES, _REGIONS, _STATES, _CITIES)
                    for name in block.replace("\n", "").split("|") if name.strip())


def is_place_name(name: str) -> bool:
    """Whether `name` (any case, spaces collapsed) is one of the well-known places."""
    return " ".join(name.split()).casefold() in _PLACES
