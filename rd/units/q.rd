<resource schema="epnml_units" resdir="units">
	<meta name="title">epnml units: Mercury spectral units from MESSENGER MASCS spectra found by machine learning</meta>
	<meta name="description">
		Spectral units of Mercury's surface from MESSENGER MASCS VIRS
		reflectance spectra gridded on the surface, separated by unsupervised
		learning (ICA, UMAP, agglomerative clustering) after the DLR Mercury
		surface composition science case, with mineral abundances estimated
		from laboratory (RELAB) spectra.  One row per unit, connected region
		and tile (tiles at most 90 degrees of longitude wide): outline as a
		pgSphere polygon in planetocentric east longitude / latitude, cell
		counts, abundances with their ensemble spread, the unit's mean spectrum
		(CSV, wavelength and I/F) as access_url and its plot as thumbnail_url.
		Rows derived from simulated spectra say "SIMULATED" in
		processing_level_desc.
	</meta>
	<meta name="creationDate">2026-11-22T00:00:00</meta>
	<meta name="subject">planetary-science</meta>
	<meta name="subject">solar-system-astronomy</meta>
	<meta name="subject">planetary-surfaces</meta>
	<meta name="subject">mercury-planet</meta>
	<meta name="contentLevel">Research</meta>
	<meta name="type">Catalog</meta>
	<meta name="source">10.5281/zenodo.7778172</meta>
	<meta name="referenceURL">https://doi.org/10.5281/zenodo.7778172</meta>
	<meta name="instrument">MESSENGER MASCS</meta>
	<meta name="facility">MESSENGER</meta>

	<table id="epn_core" onDisk="True" adql="True">
		<!-- the registry record's shortName (at most 16 characters) -->
		<meta name="shortName">epnml units</meta>
		<meta name="description">
			Spectral units, one unit region tile per row (EPN-TAP 2.0, dataproduct_type ma).
			The table is a view over the current rows of the store.
		</meta>
		<!-- every TAP response carries a DataLink service descriptor (adhoc:service)
			on granule_uid: the service dl below (service/dachs/userconfig.rd) -->
		<meta name="_associatedDatalinkService">
			<meta name="serviceId">dl</meta>
			<meta name="idColumn">granule_uid</meta>
		</meta>
		<mixin spatial_frame_type="body"
			optional_columns="thumbnail_url processing_level_desc publisher bib_reference time_scale time_refposition spatial_coordinate_description access_url access_format datalink_url access_estsize"
			>//epntap2#table-2_0</mixin>
		<!-- BEGIN generated columns: python -m epnml.schemas.render -->
		<column name="ml_model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Name of the model that produced the row"/>
		<column name="ml_model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Version of the model that produced the row"/>
		<column name="ml_weights_sha256" type="text" ucd="meta.checksum" required="True"
			description="SHA-256 of the model weights file"/>
		<column name="ml_run_id" type="text" ucd="meta.id;meta.dataset" required="True"
			description="Identifier of the ingest run that wrote the row"/>
		<column name="ml_score" type="double precision" ucd="stat.probability"
			description="Model score (probability) of the detection, 0..1"/>
		<column name="unit_id" type="integer" ucd="meta.id;src.class"
			description="Spectral unit identifier">
			<values nullLiteral="-1"/>
		</column>
		<column name="cell_count" type="integer" ucd="meta.number"
			description="Number of grid cells">
			<values nullLiteral="-1"/>
		</column>
		<column name="unit_region" type="integer" ucd="meta.id;obs.field"
			description="Connected region of the unit (0 = largest)">
			<values nullLiteral="-1"/>
		</column>
		<column name="unit_tile" type="integer" ucd="meta.id;obs.field"
			description="Tile of the region (regions are cut at 0/90/180/270 deg E)">
			<values nullLiteral="-1"/>
		</column>
		<column name="region_cell_count" type="integer" ucd="meta.number"
			description="Number of grid cells of the whole region (all tiles)">
			<values nullLiteral="-1"/>
		</column>
		<column name="abundance_olivine" type="double precision" unit="%" ucd="phys.abund"
			description="Estimated olivine abundance of the unit mean spectrum (percent, phases sum to 100)"/>
		<column name="abundance_sigma_olivine" type="double precision" unit="%" ucd="stat.stdev;phys.abund"
			description="Ensemble standard deviation of abundance_olivine"/>
		<column name="abundance_orthopyroxene" type="double precision" unit="%" ucd="phys.abund"
			description="Estimated orthopyroxene abundance of the unit mean spectrum (percent, phases sum to 100)"/>
		<column name="abundance_sigma_orthopyroxene" type="double precision" unit="%" ucd="stat.stdev;phys.abund"
			description="Ensemble standard deviation of abundance_orthopyroxene"/>
		<column name="abundance_clinopyroxene" type="double precision" unit="%" ucd="phys.abund"
			description="Estimated clinopyroxene abundance of the unit mean spectrum (percent, phases sum to 100)"/>
		<column name="abundance_sigma_clinopyroxene" type="double precision" unit="%" ucd="stat.stdev;phys.abund"
			description="Ensemble standard deviation of abundance_clinopyroxene"/>
		<column name="abundance_plagioclase" type="double precision" unit="%" ucd="phys.abund"
			description="Estimated plagioclase abundance of the unit mean spectrum (percent, phases sum to 100)"/>
		<column name="abundance_sigma_plagioclase" type="double precision" unit="%" ucd="stat.stdev;phys.abund"
			description="Ensemble standard deviation of abundance_plagioclase"/>
		<column name="abundance_glass" type="double precision" unit="%" ucd="phys.abund"
			description="Estimated glass abundance of the unit mean spectrum (percent, phases sum to 100)"/>
		<column name="abundance_sigma_glass" type="double precision" unit="%" ucd="stat.stdev;phys.abund"
			description="Ensemble standard deviation of abundance_glass"/>
		<column name="abundance_other" type="double precision" unit="%" ucd="phys.abund"
			description="Estimated other abundance of the unit mean spectrum (percent, phases sum to 100)"/>
		<column name="abundance_sigma_other" type="double precision" unit="%" ucd="stat.stdev;phys.abund"
			description="Ensemble standard deviation of abundance_other"/>
		<!-- END generated columns -->
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT \colNames FROM epnml.units WHERE superseded_at IS NULL)
		</viewStatement>
		<publish/>
	</table>

	<table id="coverage_src" onDisk="True" adql="False">
		<meta name="description">
			The time and spectral extent of epn_core's rows under the names and units
			DaCHS' coverage updater knows (t_min/t_max in JD, em_min/em_max as vacuum
			wavelengths in m).  Not queryable through TAP: only `dachs limits` reads it.
			sky_ra/sky_dec are always NULL: the footprints are in body-fixed frames,
			not on the sky, and DaCHS 2.7 writes spatial coverage as ICRS MOCs only,
			so its updater finds no sky position and writes no spatial coverage.
		</meta>
		<column name="t_min" type="double precision" unit="d" ucd="time.start;obs"/>
		<column name="t_max" type="double precision" unit="d" ucd="time.end;obs"/>
		<column name="em_min" type="double precision" unit="m" ucd="em.wl;stat.min"/>
		<column name="em_max" type="double precision" unit="m" ucd="em.wl;stat.max"/>
		<column name="sky_ra" type="double precision" unit="deg" ucd="pos.eq.ra;meta.main"/>
		<column name="sky_dec" type="double precision" unit="deg" ucd="pos.eq.dec;meta.main"/>
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT time_min AS t_min, time_max AS t_max,
					299792458.0 / NULLIF(spectral_range_max, 0) AS em_min,
					299792458.0 / NULLIF(spectral_range_min, 0) AS em_max,
					NULL::double precision AS sky_ra, NULL::double precision AS sky_dec
				FROM \schema.epn_core)
		</viewStatement>
	</table>

	<!-- Coverage for the registry records, from the rows: `dachs limits <family>/q`
		(service/provision.sh coverage, run after every ingest) fills it in from
		coverage_src (temporal in MJD, spectral in J, as VODataService wants).  No
		spatial coverage: DaCHS 2.7 writes ICRS MOCs only, these footprints are in
		body-fixed frames (see coverage_src). -->
	<coverage>
		<updater sourceTable="coverage_src"/>
	</coverage>

	<FEED source="%#epnml-datalink"/>

	<data id="import">
		<make table="epn_core"/>
	</data>

	<data id="coverage">
		<make table="coverage_src"/>
	</data>

	<regSuite title="epnml units regression">
		<regTest title="epn_core serves a current row">
			<url parSet="TAP" QUERY="SELECT TOP 1 service_title, target_class FROM epnml_units.epn_core"
				>/tap/sync</url>
			<code>
				# a row, not the table name: the name is also in the query echoed back
				row = self.getUnique(self.getVOTableRows())
				self.assertEqual(row["service_title"], "epnml_units")
				self.assertEqual(row["target_class"], "planet")
			</code>
		</regTest>
	</regSuite>
</resource>
